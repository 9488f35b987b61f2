import os
import pickle

import pytest

torch = pytest.importorskip("torch")

from extras.runtime import checkpoints  # noqa: E402
from extras.runtime.checkpoints import CheckpointFiles  # noqa: E402
from y8m.errors import UsageError  # noqa: E402

FILES = CheckpointFiles("ckpt-", ".pt", width=3)


class _Custom:
    pass


def _parts(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.5)
    return model, optimizer, scheduler


def _step(model, optimizer, scheduler, i):
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(i))
    loss = model(x).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()


def test_names_are_numbered_and_ordered(tmp_path):
    assert FILES.path(str(tmp_path), 7) == os.path.join(tmp_path, "ckpt-007.pt")
    for n in (10, 2, 1000):
        checkpoints.save(FILES.path(str(tmp_path), n), {"n": n})
    (tmp_path / "ckpt-final.pt").write_text("not ours")
    (tmp_path / "model.pt").write_text("not ours")
    assert [FILES.number(p) for p in FILES.existing(str(tmp_path))] == [2, 10, 1000]
    assert FILES.latest(str(tmp_path)).endswith("ckpt-1000.pt")
    FILES.prune(str(tmp_path), keep=2)
    assert [FILES.number(p) for p in FILES.existing(str(tmp_path))] == [10, 1000]
    FILES.prune(str(tmp_path), keep=0)  # keeps all
    assert len(FILES.existing(str(tmp_path))) == 2
    assert FILES.latest(str(tmp_path / "missing")) is None
    assert FILES.resume(str(tmp_path / "missing")) is None


def test_save_is_atomic_and_load_is_weights_only(tmp_path):
    path = str(tmp_path / "a" / "ckpt-001.pt")
    checkpoints.save(path, {"tensor": torch.arange(3), "meta": {"epoch": 1}})
    assert sorted(os.listdir(tmp_path / "a")) == ["ckpt-001.pt"]  # no temporary left
    loaded = checkpoints.load(path)
    assert loaded["meta"] == {"epoch": 1} and torch.equal(loaded["tensor"], torch.arange(3))

    torch.save({"x": _Custom()}, tmp_path / "foreign.pt")  # weights_only refuses objects
    with pytest.raises(UsageError, match="cannot read checkpoint"):
        checkpoints.load(str(tmp_path / "foreign.pt"))
    (tmp_path / "broken.pt").write_bytes(b"garbage")
    with pytest.raises(UsageError, match="cannot read checkpoint"):
        checkpoints.load(str(tmp_path / "broken.pt"))
    with pytest.raises(UsageError):
        checkpoints.load(str(tmp_path / "none.pt"))


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = str(tmp_path / "ckpt-001.pt")
    checkpoints.save(path, {"v": 1})
    with pytest.raises((AttributeError, pickle.PicklingError)):
        checkpoints.save(path, {"v": lambda: None})  # cannot be pickled
    assert checkpoints.load(path) == {"v": 1}
    assert os.listdir(tmp_path) == ["ckpt-001.pt"]


def test_resume_continues_exactly_like_one_run(tmp_path):
    straight = _parts()
    for i in range(4):
        _step(*straight, i)

    first = _parts()
    for i in range(2):
        _step(*first, i)
    directory = str(tmp_path)
    checkpoints.save(FILES.path(directory, 2), {"step": 2, **checkpoints.training_state(*first)})

    path, payload = FILES.resume(directory)
    assert path.endswith("ckpt-002.pt") and payload["step"] == 2
    resumed = _parts(seed=1)  # other initial weights: all of them come from the checkpoint
    checkpoints.restore_training(payload, *resumed)
    for i in range(payload["step"], 4):
        _step(*resumed, i)
    for (name, a), b in zip(straight[0].state_dict().items(), resumed[0].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert resumed[2].get_last_lr() == straight[2].get_last_lr()
    assert resumed[1].state_dict()["state"][0]["step"].item() == 4


def test_strip_module_prefix():
    weights = {"module.a": 1, "module.b": 2}
    assert checkpoints.strip_module_prefix(weights) == {"a": 1, "b": 2}
    assert checkpoints.strip_module_prefix({"a": 1, "module.b": 2}) == {"a": 1, "module.b": 2}
