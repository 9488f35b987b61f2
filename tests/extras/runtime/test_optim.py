"""The extras' Adam: torch's fused kernel, the same steps and state as the plain one."""

import pytest

torch = pytest.importorskip("torch")

from extras.runtime import optim  # noqa: E402


def model(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    net[0].bias.requires_grad_(False)  # frozen: left out of the optimizer
    return net


def train(net, optimizer, steps=5):
    for step in range(steps):
        x = torch.randn(8, 6, generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        net(x).square().mean().backward()
        optimizer.step()


def test_adam_is_fused_and_follows_plain_adam():
    fused_net, plain_net = model(), model()
    fused = optim.adam(fused_net.parameters(), 1e-2)
    assert fused.defaults["fused"] is True
    assert len(fused.param_groups[0]["params"]) == 3  # the frozen bias is not there
    train(fused_net, fused)
    train(plain_net, torch.optim.Adam([p for p in plain_net.parameters() if p.requires_grad], 1e-2))
    for a, b in zip(fused_net.parameters(), plain_net.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_state_moves_between_fused_and_plain_adam():
    net = model()
    fused = optim.adam(net.parameters(), 1e-2)
    train(net, fused, steps=2)
    plain = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], 1e-2)
    plain.load_state_dict(fused.state_dict())
    again = optim.adam(net.parameters(), 1e-2)
    again.load_state_dict(plain.state_dict())
    for key in ("exp_avg", "exp_avg_sq", "step"):
        for p in again.param_groups[0]["params"]:
            torch.testing.assert_close(again.state[p][key], fused.state[p][key])


def test_falls_back_where_there_is_no_fused_kernel(monkeypatch):
    real = torch.optim.Adam

    def no_fused(params, lr, **kwargs):
        if kwargs.get("fused"):
            raise RuntimeError("`fused=True` requires all the params to be floating point")
        return real(params, lr=lr, **kwargs)

    monkeypatch.setattr(optim.torch.optim, "Adam", no_fused)
    optimizer = optim.adam(model().parameters(), 1e-2)
    assert not optimizer.defaults.get("fused")


def test_plain_adam_on_request():
    assert not optim.adam(model().parameters(), 1e-2, fused=False).defaults.get("fused")
