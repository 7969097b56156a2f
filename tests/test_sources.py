"""Dataset sources: the generic folder source and subject selection."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from rrlsrn.data.sources import default_split, list_volumes


def write_nifti(path, shape=(8, 8, 4)):
    nib.save(nib.Nifti1Image(np.ones(shape, np.float32), np.eye(4)), str(path))


def test_folder_source_pairs_volumes_with_masks(tmp_path):
    for name in ("b.nii.gz", "a.nii", "a_mask.nii.gz", "notes.txt"):
        if name.endswith("txt"):
            (tmp_path / name).write_text("x")
        else:
            write_nifti(tmp_path / name)
    volumes = list_volumes({"source": "folder", "path": str(tmp_path)})
    assert list(volumes) == ["a", "b"]  # sorted, masks are not volumes, text ignored
    assert volumes["a"].mask == tmp_path / "a_mask.nii.gz"
    assert volumes["b"].mask is None and volumes["b"].path == tmp_path / "b.nii.gz"
    # a user's own folder is a test set unless the config says otherwise
    assert default_split({"source": "folder"}, list(volumes)) == {"a": "test", "b": "test"}


def test_folder_source_errors_say_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist: put your HR NIfTI"):
        list_volumes({"source": "folder", "path": str(tmp_path / "nope")})
    with pytest.raises(FileNotFoundError, match="holds no NIfTI volume"):
        list_volumes({"source": "folder", "path": str(tmp_path)})


def test_unknown_subjects_and_collections_are_named(tmp_path):
    write_nifti(tmp_path / "a.nii.gz")
    with pytest.raises(ValueError, match=r"\['zz'\]"):
        list_volumes({"source": "folder", "path": str(tmp_path), "subjects": ["zz"]})
    with pytest.raises(ValueError, match="'neonatal'"):
        list_volumes({"source": "embedded", "collection": "neonatal"})
