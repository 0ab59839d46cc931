"""The SMPL files (generated stand-ins with the real shapes): smplx2smpl, regressors, SMPL models, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from benchmark_fixtures import (
    N_SMPL,
    N_SMPLX,
    smpl_arrays,
    smplx2smpl_dense,
    smplx2smpl_triplets,
    threedpw_tree,
    write_smpl_pkl,
)

from tasks.errors import UsageError
from tasks.evaluation.benchmarks import load_benchmark
from tasks.evaluation.benchmarks.errors import ConversionFileError
from tasks.evaluation.benchmarks.protocol import H36M_TO_LSP14
from tasks.evaluation.benchmarks.smpl_files import (
    SMPL_FILES_ENV,
    load_smpl_conversion,
    load_smpl_model,
    load_smpl_models,
    load_smplx2smpl,
)
from tasks.evaluation.benchmarks.threedpw import build_annotations


def test_conversion_from_the_reference_layout(smpl_files, monkeypatch):
    monkeypatch.setenv(SMPL_FILES_ENV, str(smpl_files))
    conv = load_smpl_conversion()  # from $HUMAN3R_SMPL_FILES
    assert conv.smplx2smpl.shape == (N_SMPL, N_SMPLX) and conv.smplx2smpl.is_sparse
    np.testing.assert_array_equal(conv.j_regressor_24, smpl_arrays(0)["J_regressor"].astype(np.float32))
    h36m = np.load(smpl_files / "smpl" / "J_regressor_h36m.npy").astype(np.float32)
    np.testing.assert_array_equal(conv.regressor("h36m14"), h36m[list(H36M_TO_LSP14)])
    assert conv.regressor("h36m14").shape == (14, N_SMPL) and conv.regressor("smpl24").shape == (24, N_SMPL)
    with pytest.raises(ValueError, match="unknown joint set"):
        conv.regressor("coco17")
    vertices = torch.randn(2, 3, N_SMPLX, 3)  # (frames, people, V, 3)
    cols, weights = smplx2smpl_triplets()
    expected = (vertices[:, :, torch.from_numpy(cols)] * torch.from_numpy(weights)[..., None]).sum(-2)
    torch.testing.assert_close(conv.to_smpl(vertices), expected, rtol=1e-6, atol=1e-6)


def test_smplx2smpl_pickle_format(tmp_path):
    """The reference's file: a pickled {'matrix': (6890, 10475) array}, cast to float32; wrong shapes refused."""
    dense = smplx2smpl_dense(1)
    with (tmp_path / "smplx2smpl.pkl").open("wb") as f:
        pickle.dump({"matrix": dense}, f, protocol=5)
    del dense
    matrix = load_smplx2smpl(tmp_path / "smplx2smpl.pkl")
    cols, weights = smplx2smpl_triplets(1)
    assert matrix.dtype == torch.float32 and matrix._nnz() == cols.size
    rows, got_cols = matrix.indices().numpy()
    np.testing.assert_array_equal(got_cols.reshape(N_SMPL, 3), np.sort(cols, axis=1))
    np.testing.assert_array_equal(matrix.values().numpy().reshape(N_SMPL, 3),
                                  np.take_along_axis(weights, np.argsort(cols, axis=1), axis=1))
    (tmp_path / "small.pkl").write_bytes(pickle.dumps({"matrix": np.eye(3)}))
    with pytest.raises(ConversionFileError, match=r"has shape \(3, 3\), expected \(6890, 10475\)"):
        load_smplx2smpl(tmp_path / "small.pkl")
    (tmp_path / "nodict.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ConversionFileError, match="not a dict with an array 'matrix'"):
        load_smplx2smpl(tmp_path / "nodict.pkl")


def test_smpl_model_pickle_with_chumpy_and_sparse_arrays(tmp_path):
    """The official v1.1.0 pickle (chumpy shapedirs, scipy.sparse J_regressor) reads without chumpy or scipy."""
    model = load_smpl_model(write_smpl_pkl(tmp_path / "basicmodel_m_lbs_10_207_0_v1.1.0.pkl", seed=1))
    arrays = smpl_arrays(1)
    for key in ("v_template", "shapedirs", "J_regressor", "weights", "f"):
        np.testing.assert_array_equal(model.arrays[key], arrays[key])
    betas = np.linspace(-1, 1, 10)
    j0 = arrays["J_regressor"][0] @ (arrays["v_template"] + arrays["shapedirs"][:, :, :10] @ betas)
    np.testing.assert_allclose(model.rest_pelvis(betas), j0, rtol=1e-12)
    assert model.j_regressor.dtype == np.float32 and model.j_regressor.shape == (24, N_SMPL)


def test_3dpw_built_with_the_smpl_models(smpl_files, tmp_path, formats_info):
    """J0 from the gendered models: transl_cam = R (trans + J0) + t - J0, against the pack's stub-J0 build."""
    release = threedpw_tree(tmp_path / "3DPW", with_images=False)
    models = load_smpl_models(smpl_files)
    built = build_annotations(release, lambda g, b: models[g].rest_pelvis(b), image_size=(1080, 1920))
    stub = {g: np.array(v) for g, v in formats_info["3dpw"]["stub_pelvis_J0"].items()}
    with_stub = build_annotations(release, lambda g, b: stub[g], image_size=(1080, 1920))
    for key, entry in built.items():
        R = entry["cam_poses"][:3, :3].astype(np.float64)
        for mine, theirs in zip(entry["humans"], with_stub[key]["humans"]):
            betas = mine["smpl_shape"].astype(np.float64)
            j_new, j_old = models[mine["smpl_gender"]].rest_pelvis(betas), stub[mine["smpl_gender"]]
            # transl differs by (R - I)(J0_new - J0_old): the rest pelvis enters through the rotation only
            np.testing.assert_allclose(mine["smpl_transl"] - theirs["smpl_transl"],
                                       (R - np.eye(3)) @ (j_new - j_old), atol=2e-6)
    assert len(load_benchmark("3dpw", release, check_images=False).sequences) == 1


def test_missing_and_malformed_files(tmp_path, monkeypatch, smpl_files):
    monkeypatch.delenv(SMPL_FILES_ENV, raising=False)
    with pytest.raises(ConversionFileError, match=f"\\${SMPL_FILES_ENV} is not set") as err:
        load_smpl_conversion()
    assert isinstance(err.value, UsageError) and "\n" not in str(err.value)
    with pytest.raises(ConversionFileError, match="does not exist"):
        load_smpl_conversion(tmp_path / "absent")
    (tmp_path / "smpl").mkdir()
    np.save(tmp_path / "smpl" / "J_regressor_h36m.npy", np.zeros((17, 100)))
    with pytest.raises(ConversionFileError) as err:
        load_smpl_conversion(tmp_path)
    assert "lacks smplx2smpl (smplx2smpl.pkl or smplx2smpl_sparse.pt), SMPL neutral model" in str(err.value)
    (tmp_path / "smpl" / "SMPL_NEUTRAL.npz").write_bytes((smpl_files / "smpl" / "SMPL_NEUTRAL.npz").read_bytes())
    (tmp_path / "smplx2smpl_sparse.pt").write_bytes((smpl_files / "smplx" / "smplx2smpl_sparse.pt").read_bytes())
    with pytest.raises(ConversionFileError, match=r"H36M regressor .* has shape \(17, 100\)"):
        load_smpl_conversion(tmp_path)
    with pytest.raises(ConversionFileError, match="lacks the SMPL male model"):
        load_smpl_models(tmp_path)
    arrays = smpl_arrays(2)
    del arrays["J_regressor"]
    arrays["shapedirs"] = arrays["shapedirs"][:, :, :5]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ConversionFileError, match="no array 'J_regressor'.*'shapedirs' is \\(6890, 3, 5\\)"):
        load_smpl_model(tmp_path / "bad.npz")
