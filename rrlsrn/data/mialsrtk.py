"""The public MIALSRTK fetal sample (CC0), downloadable by raw-file address.

Six thick-slice HASTE T2 stacks of one fetus with manual brain masks, from the GitHub
repository Medical-Image-Analysis-Laboratory/mialsuperresolutiontoolkit (folder
``data/``) at a fixed commit.  The package ships the same files (``embedded`` source);
this module fetches them for a ``fetal`` dataset with ``download: mialsrtk``, each
checked against its SHA-256.
"""

from __future__ import annotations

import os
from pathlib import Path

from rrlsrn.data.download import download

COMMIT = "ecd37d5f84189c33a76368d3653d9af588032b3c"
RAW_BASE = (
    "https://raw.githubusercontent.com/Medical-Image-Analysis-Laboratory/"
    f"mialsuperresolutiontoolkit/{COMMIT}/data"
)
URL_ENV = "RRLSRN_MIALSRTK_URL"
_MASKS = "derivatives/manual_masks/sub-01/anat"
_STACK_SHA256 = {
    1: "be83d9c2c6d9b83c1ae9d619b8fefa7048016246df4a97e5c76e0686e0cc8f4c",
    2: "5bda15f4cfa03f9184068b5881c9ac38f7be9d03ddb8159803d77b36f87e61f7",
    3: "7fa77748de4de73c481f4453f1e4b948742e3fa6962e6f516a4171b8fbbfd84e",
    4: "6e9d158430468510ade7fe499bf693234fb05ceec7dd6b5e8ab1c3591ac13eed",
    5: "7a17bd95c0bbacebc51c244d493b6f9d1f969f45d25e0325e7b649231e897820",
    6: "5abfe46881e2b3aa82eb65e14a39323fdbcf21b4466bf98abe354bf28b44aa13",
}
_MASK_SHA256 = {
    1: "f5928e6b2ffeb65e88506ce606a3934fdd8de8f8bb0b585b1436b7e54a33e127",
    2: "2c497fafe960a8950c2bc96202a87674b9f6a12d8478cea8be2eaa166434ec8b",
    3: "e4459913c7d8162c0c5181cf62b4d59dfa8894c7183b0bd20b533d6264f61a70",
    4: "43ba053394f218827a85a6a610693a3596110a8c54b4976046ea15ca99a12e73",
    5: "8293ccd3d22aae7beb274937c06faf456177dd6071a82feae53a0b2ba4967096",
    6: "6b73de75b900c9bad86f5a0c83054a01f8e0b0017813042acf232215ee8ef4ac",
}
# stack -> its manual mask, and file -> SHA-256, for every file of the sample
MASK_OF = {
    f"sub-01/anat/sub-01_run-{n}_T2w.nii.gz": f"{_MASKS}/sub-01_run-{n}_T2w_desc-brain_mask.nii.gz"
    for n in _STACK_SHA256
}
SHA256 = {
    **{f"sub-01/anat/sub-01_run-{n}_T2w.nii.gz": h for n, h in _STACK_SHA256.items()},
    **{f"{_MASKS}/sub-01_run-{n}_T2w_desc-brain_mask.nii.gz": h for n, h in _MASK_SHA256.items()},
}


def fetch_sample(
    root: str | os.PathLike, base_url: str | None = None, progress: bool = True
) -> list[Path]:
    """Download the missing sample files into ``root`` (BIDS layout); return all paths."""
    root = Path(root)
    base = (base_url or os.environ.get(URL_ENV) or RAW_BASE).rstrip("/")
    return [
        download(f"{base}/{rel}", root / rel, sha256=digest, progress=progress)
        for rel, digest in SHA256.items()
    ]
