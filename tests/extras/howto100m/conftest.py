import pytest

from tests.extras.howto100m.synthetic import make_dataset, train_config


@pytest.fixture(autouse=True)
def one_thread():
    """Keep torch to one thread: the CPU is shared and the models are tiny."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    """Generated captions, features and word2vec (see synthetic.py)."""
    return make_dataset(str(tmp_path_factory.mktemp("howto100m")))


@pytest.fixture(scope="session")
def trained(data, tmp_path_factory):
    """A model trained for 14 epochs on the synthetic pairing: (run folder, fit summary)."""
    torch = pytest.importorskip("torch")
    from extras.howto100m.train import fit

    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("run")
    return run, fit(train_config(data, run, epochs=14))
