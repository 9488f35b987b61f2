"""Precise BatchNorm statistics equal the definition: the exact mean and unbiased variance of
every value each layer sees over the batches."""

import copy

import pytest

torch = pytest.importorskip("torch")

from extras.milnce.s3d import S3D  # noqa: E402
from extras.runtime.precise_bn import (  # noqa: E402
    batch_norm_layers,
    load_running_stats,
    recompute_bn_stats,
    running_stats,
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _reference(model, batches):
    """Per layer: (mean, unbiased var) in float64 of its inputs over all `batches`, computed
    from the inputs themselves (hooked), with BatchNorm in train mode as in training."""
    seen = {name: [] for name, m in model.named_modules() if m in batch_norm_layers(model)}
    handles = [
        m.register_forward_pre_hook(lambda _, args, name=name: seen[name].append(args[0].clone()))
        for name, m in model.named_modules()
        if name in seen
    ]
    model.eval()
    for layer in batch_norm_layers(model):
        layer.train()
    with torch.no_grad():
        for batch in batches:
            model(batch)
    for handle in handles:
        handle.remove()
    reference = {}
    for name, inputs in seen.items():
        # Every value of channel c, over all batches and positions: [C, total count].
        values = torch.cat([x.double().transpose(0, 1).reshape(x.shape[1], -1) for x in inputs], 1)
        mean = values.mean(dim=1)
        var = ((values - mean[:, None]) ** 2).sum(dim=1) / (values.shape[1] - 1)
        reference[name] = (mean, var)
    return reference


def _s3d():
    torch.manual_seed(0)
    model = S3D(num_embeddings=5)
    # Weights far from the initial statistics (mean 0, var 1), so a wrong estimate shows.
    with torch.no_grad():
        model.conv1.conv1.weight.mul_(3.0).add_(0.05)
    return model


def test_recomputed_statistics_equal_the_definition():
    model = _s3d()
    generator = torch.Generator().manual_seed(1)
    # Unequal batch sizes: the pooled statistics weight every value, not every batch, alike.
    batches = [torch.rand(n, 3, 8, 64, 64, generator=generator) for n in (3, 2, 4, 2)]
    reference = _reference(copy.deepcopy(model), batches[:3])
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k}
    tracked = {k: v.clone() for k, v in running_stats(model).items() if "num_batches" in k}
    model.train()
    used = recompute_bn_stats(model, batches, lambda b: model(b), num_batches=3, progress=False)
    assert used == 3
    assert len(reference) == len(batch_norm_layers(model)) == 76  # every BatchNorm3d of S3D
    layers = dict(model.named_modules())
    for name, (mean, var) in reference.items():
        torch.testing.assert_close(layers[name].running_mean.double(), mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(layers[name].running_var.double(), var, rtol=1e-5, atol=1e-5)
    # Weights, num_batches_tracked and the modes are as they were.
    state = model.state_dict()
    for key, value in weights.items():
        if "num_batches" not in key:
            assert torch.equal(state[key], value), key
    for key, value in tracked.items():
        assert torch.equal(state[key], value), key
    assert all(m.training for m in model.modules())


def test_the_pooled_variance_is_not_the_mean_of_batch_variances():
    # One channel; batch means 0 and 10: the population variance includes their spread.
    bn = torch.nn.BatchNorm1d(1)
    batches = [torch.tensor([[-1.0], [1.0]]), torch.tensor([[9.0], [11.0]])]
    recompute_bn_stats(bn, batches, lambda b: bn(b), progress=False)
    values = torch.tensor([-1.0, 1.0, 9.0, 11.0])
    assert bn.running_mean.item() == pytest.approx(5.0)
    assert bn.running_var.item() == pytest.approx(values.var().item())  # 34.67, not 2
    assert bn.training  # a fresh module is in train mode and stays so


def test_stops_at_the_end_of_the_data_and_skips_when_disabled():
    bn = torch.nn.BatchNorm1d(2)
    batches = [torch.randn(4, 2) + 3.0 for _ in range(2)]
    assert recompute_bn_stats(bn, batches, lambda b: bn(b), 0, progress=False) == 0
    assert torch.equal(bn.running_mean, torch.zeros(2))
    assert recompute_bn_stats(bn, batches, lambda b: bn(b), 200, progress=False) == 2
    torch.testing.assert_close(bn.running_mean, torch.cat(batches).mean(0))
    assert recompute_bn_stats(torch.nn.Linear(2, 2), batches, lambda b: None) == 0  # no BN


def test_running_stats_round_trip():
    model = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 1), torch.nn.BatchNorm1d(2))
    saved = running_stats(model)
    assert set(saved) == {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    model.train()
    model(torch.randn(4, 1, 3) * 5)
    assert not torch.equal(model[1].running_var, saved["1.running_var"])
    load_running_stats(model, saved)
    assert torch.equal(model[1].running_var, saved["1.running_var"])
    assert model[1].num_batches_tracked.item() == 0
    with pytest.raises(KeyError):
        load_running_stats(model, {"0.weight_typo": torch.zeros(1)})
