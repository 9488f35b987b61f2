"""The packed sentence max-pool (real words only) against the dense one (every slot)."""

import pytest

torch = pytest.importorskip("torch")

from extras.howto100m import MaxMarginRankingLoss, Net, SentenceMaxpool  # noqa: E402

TOL = dict(atol=1e-5, rtol=1e-5)


def padded_captions(lengths, slots=20, dim=7, seed=0):
    """[N, slots, dim] word vectors, caption i keeping its first lengths[i] slots."""
    generator = torch.Generator().manual_seed(seed)
    words = torch.randn(len(lengths), slots, dim, generator=generator)
    keep = torch.arange(slots)[None, :] < torch.tensor(lengths)[:, None]
    return words * keep[..., None]


def pool_and_grads(pool, words, packing, seed=1):
    """Output and (weight, bias) gradients under a random upstream gradient."""
    pool.use_packing = packing
    pool.zero_grad(set_to_none=True)
    out = pool(words)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    (out * upstream).sum().backward()
    return out.detach(), pool.fc.weight.grad.clone(), pool.fc.bias.grad.clone()


LENGTHS = [0, 20, 1, 3, 0, 5, 20, 2, 7, 11, 19, 4, 4, 13, 0, 1, 16, 8, 9, 6, 10, 12, 14, 15]


@pytest.mark.parametrize("mask_padding", [False, True])
def test_packed_pool_equals_dense_forward_and_gradients(mask_padding):
    torch.manual_seed(0)
    pool = SentenceMaxpool(7, 16, mask_padding=mask_padding)
    words = padded_captions(LENGTHS)  # every length 0..20 but 17, 18; some twice
    dense = pool_and_grads(pool, words, packing=False)
    packed = pool_and_grads(pool, words, packing=True)
    for name, a, b in zip(("output", "weight grad", "bias grad"), packed, dense):
        torch.testing.assert_close(a, b, **TOL, msg=name)
    assert dense[1].abs().max() > 0.1  # the gradients compared are not trivially zero


@pytest.mark.parametrize("bias", [0.7, -0.7])
def test_all_padding_caption_reproduces_the_dense_result_exactly(bias):
    pool = SentenceMaxpool(5, 8)
    with torch.no_grad():
        pool.fc.bias.fill_(bias)
    empty = torch.zeros(3, 20, 5)
    for packing in (False, True):
        pool.use_packing = packing
        assert torch.equal(pool(empty), torch.relu(pool.fc.bias).expand(3, 8))
    pool.mask_padding = True
    for packing in (False, True):
        pool.use_packing = packing
        out = pool(empty)
        assert torch.equal(out, torch.zeros(3, 8))
        pool.zero_grad(set_to_none=True)
        out.sum().backward()
        assert pool.fc.weight.grad is None or not pool.fc.weight.grad.any()


def test_full_captions_take_no_padding_candidate():
    torch.manual_seed(0)
    pool = SentenceMaxpool(5, 8)
    with torch.no_grad():
        pool.fc.bias.fill_(50.0)  # relu(b) would win everywhere if a padding slot were added
        pool.fc.weight.copy_(-pool.fc.weight.abs())
    words = torch.rand(4, 20, 5) + 0.1  # all 20 slots real, so W x < 0 in every feature
    assert (pool(words) < 50.0).all()
    pool.use_packing = False
    torch.testing.assert_close(pool(words), pool.dense_forward(words), **TOL)


def test_packed_pool_projects_only_the_real_words():
    pool = SentenceMaxpool(7, 16)
    seen = []
    pool.fc.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    pool(padded_captions(LENGTHS))
    assert seen == [torch.Size([sum(LENGTHS) + 1, 7])]  # and one padded slot, for b
    pool.use_packing = False
    pool(padded_captions(LENGTHS))
    assert seen[-1] == torch.Size([len(LENGTHS), 20, 7])


def test_padding_between_words_and_repeated_words_match_dense():
    torch.manual_seed(0)
    pool = SentenceMaxpool(6, 12)
    words = padded_captions([20, 20, 20, 20, 20, 20], dim=6)
    words[0, 3:9] = 0  # a gap inside the caption
    words[1, 10:] = 0
    words[2, 5] = words[2, 2]  # the same word twice: an exact tie in every feature
    words[3, ::2] = 0
    words[4, 1:] = words[4, 0]  # one word repeated in every slot
    dense = pool_and_grads(pool, words, packing=False)
    packed = pool_and_grads(pool, words, packing=True)
    for a, b in zip(packed, dense):
        torch.testing.assert_close(a, b, **TOL)


def test_a_tie_between_a_word_and_the_padding_goes_to_the_word_as_on_the_dense_path():
    torch.manual_seed(0)
    pool = SentenceMaxpool(6, 12)
    with torch.no_grad():
        pool.fc.weight[:4] = 0  # features 0-3: every word projects to exactly b, as padding does
    words = padded_captions([3, 1, 20, 0, 7], dim=6)
    dense = pool_and_grads(pool, words, packing=False)
    packed = pool_and_grads(pool, words, packing=True)
    assert dense[1][:4].abs().sum() > 0  # the dense path sends the tie's gradient to a word
    for a, b in zip(packed, dense):
        torch.testing.assert_close(a, b, **TOL)


def test_net_packed_equals_dense_through_the_loss():
    torch.manual_seed(0)
    net = Net(embd_dim=24, video_dim=10, we_dim=7)
    video = torch.rand(24, 10)
    text = padded_captions(LENGTHS, seed=3)  # 24 pairs = 4 videos x 6
    results = []
    for packing in (False, True):
        net.text_pooling.use_packing = packing
        net.zero_grad(set_to_none=True)
        loss = MaxMarginRankingLoss()(net(video, text), n_pair=6)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads))
    (dense_loss, dense_grads), (packed_loss, packed_grads) = results
    torch.testing.assert_close(packed_loss, dense_loss, **TOL)
    assert packed_grads.keys() == dense_grads.keys() and "text_pooling.fc.weight" in dense_grads
    for name in dense_grads:
        torch.testing.assert_close(packed_grads[name], dense_grads[name], **TOL, msg=name)


def test_packing_is_not_part_of_the_checkpoint_config():
    net = Net(embd_dim=8, video_dim=4, we_dim=3, use_packing=False)
    assert "use_packing" not in net.config()
    assert net.text_pooling.use_packing is False
    assert Net(embd_dim=8, video_dim=4, we_dim=3).text_pooling.use_packing is True


def test_empty_batch_pools_to_nothing():
    pool = SentenceMaxpool(5, 8)
    assert pool(torch.zeros(0, 20, 5)).shape == (0, 8)
