import os
import time

import pytest
import torch

from skcnn.pretrained import UnsafeWeightsError, load_state_dict, resolve_weights


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = marker
    bad = tmp_path / "evil.pth"
    torch.save({"features.conv0.weight": torch.zeros(1), "x": payload}, bad)
    assert not marker.exists()
    with pytest.raises(UnsafeWeightsError, match="pickled"):
        load_state_dict(bad)
    assert not marker.exists()


def test_missing_file_and_bad_name(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        resolve_weights("densenet121", tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="no weights named"):
        resolve_weights("densenet121", "NOT_A_WEIGHT")


def test_offline_default_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    # No network here (or in CI): the download must fail quickly and explain.
    import socket

    def no_network(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    start = time.perf_counter()
    with pytest.raises(RuntimeError) as info:
        resolve_weights("densenet121", "DEFAULT")
    assert time.perf_counter() - start < 30
    msg = str(info.value)
    assert "https://download.pytorch.org/models/densenet121" in msg
    assert str(tmp_path) in msg and "copy it to" in msg


def test_cached_default_with_a_forged_file_is_refused(tmp_path, monkeypatch):
    from torchvision.models import DenseNet121_Weights, densenet121

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = DenseNet121_Weights.DEFAULT.url
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    # The file name carries a hash prefix that torch.hub checks, so a made-up
    # file under the real name must be rejected.
    torch.save(densenet121().state_dict(), folder / url.rsplit("/", 1)[-1])
    with pytest.raises(RuntimeError, match="invalid hash value"):
        resolve_weights("densenet121", "DEFAULT")


def test_cached_default_is_used_offline(tmp_path, monkeypatch):
    """weights="DEFAULT" resolves to the hub-cache file of the architecture's
    default weights: loaded without any network, hash checked, with the
    weights' own normalisation."""
    import hashlib
    import socket

    from torchvision.models import DenseNet121_Weights, densenet121

    import skcnn.pretrained as pretrained

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    state = densenet121().state_dict()
    tmp = folder / "tmp.pth"
    torch.save(state, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    filename = f"densenet121-{digest}.pth"
    tmp.rename(folder / filename)

    real = DenseNet121_Weights.DEFAULT

    class Weights:  # the real entry, under a URL whose hash our file has
        url = f"https://download.pytorch.org/models/{filename}"
        transforms = real.transforms
        name = real.name

    monkeypatch.setattr(pretrained, "_torchvision_weights", lambda arch, w: Weights)
    monkeypatch.setattr(
        socket, "create_connection", lambda *a, **k: pytest.fail("network used")
    )
    resolved = resolve_weights("densenet121", "DEFAULT")
    assert resolved.source == Weights.url
    assert set(resolved.state_dict) == set(state)
    for k in ("features.conv0.weight", "classifier.weight"):
        torch.testing.assert_close(resolved.state_dict[k], state[k])
    assert resolved.mean == tuple(real.transforms().mean)


def test_url_weights_served_from_cache_with_hash_check(tmp_path, monkeypatch):
    import hashlib

    from torchvision.models import densenet121

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    state = densenet121().state_dict()
    tmp = tmp_path / "w.pth"
    torch.save(state, tmp)
    prefix = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    (folder / f"densenet121-{prefix}.pth").write_bytes(tmp.read_bytes())
    resolved = resolve_weights(
        "densenet121", f"https://example.invalid/models/densenet121-{prefix}.pth"
    )
    assert torch.equal(
        resolved.state_dict["features.conv0.weight"], state["features.conv0.weight"]
    )


def test_url_without_hash_warns(tmp_path, monkeypatch):
    from torchvision.models import densenet121

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(densenet121().state_dict(), folder / "plain.pth")
    with pytest.warns(UserWarning, match="cannot be verified"):
        resolve_weights("densenet121", "https://example.invalid/plain.pth")


def test_a_truncated_weight_file_is_named(tmp_path):
    import torch

    from skcnn.pretrained import load_state_dict

    torch.save({"w": torch.zeros(1000)}, tmp_path / "w.pth")
    data = (tmp_path / "w.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.pth' cannot be read.*truncated"):
        load_state_dict(tmp_path / "cut.pth")
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(ValueError, match="cut.safetensors' cannot be read"):
        load_state_dict(tmp_path / "cut.safetensors")
