"""`y8m bench howto100m`: the training step against a plain dense version of it, embedding
throughput and eval time, on random data drawn like HowTo100M's clip-caption batches."""

from __future__ import annotations

import copy
import json
import platform
import resource
import statistics
import time

import torch

from extras.howto100m.config import TrainConfig
from extras.howto100m.model import Net, distinct_rows
from extras.howto100m.retrieval import retrieval_metrics
from extras.howto100m.train import build_parts, pair_keys, train_step
from extras.runtime.device import describe_device, pick_device
from extras.runtime.timing import sync, time_calls

_VOCABULARY = 20_000  # distinct word vectors the random captions draw from
# HowTo100M: 136.6M clip-caption pairs over 1.221M videos (thesis table 5.1).
CAPTIONS_PER_VIDEO = 112
# The steps a round times, in order: the plain equations, `train_step` on pairs taken as
# distinct (packed word pooling only), and `train_step` as training runs it (repeats once).
_STEPS = ("plain", "packed", "fast")


def caption_words(
    num: int, max_words: int, we_dim: int, mean_words: float, generator: torch.Generator
) -> torch.Tensor:
    """Zero-padded word vectors of `num` random captions, drawn like HowTo100M's.

    Lengths follow a gamma-Poisson (negative binomial, shape 2) with mean `mean_words`, cut at
    `max_words`: at mean 4 (thesis 5.3.2: ~4 words per caption after stop-words) 11% of the
    captions keep no word and a few fill all 20 slots. Words come from a Zipf-like vocabulary
    of word2vec-sized vectors, so captions repeat words as real ones do.

    Returns:
        float32 [num, max_words, we_dim]; slots past each caption's length are zero.
    """
    rate = -(torch.rand(num, 2, generator=generator).log().sum(dim=1)) * mean_words / 2
    lengths = torch.poisson(rate, generator=generator).clamp(max=max_words)  # (num,)
    table = 0.13 * torch.randn(_VOCABULARY, we_dim, generator=generator)  # GoogleNews scale
    zipf = 1.0 / torch.arange(1, _VOCABULARY + 1, dtype=torch.float64)
    ids = torch.multinomial(zipf, num * max_words, replacement=True, generator=generator)
    words = table[ids].view(num, max_words, we_dim)
    return words * (torch.arange(max_words) < lengths[:, None])[..., None]


def _batch(sizes: dict, generator: torch.Generator) -> dict:
    """A loader-shaped batch: video [v, k, video_dim], text [v, k, W, we_dim], caption [v, k].

    As `TrainPairs` draws them: each video has `captions_per_video` clip-caption pairs and k
    of them are drawn uniformly with replacement (thesis 5.4.1), so some pairs repeat; with
    `captions_per_video` 0 every pair is distinct.
    """
    v, k, pool = sizes["videos_per_batch"], sizes["pairs_per_video"], sizes["captions_per_video"]
    num = v * (pool or k)
    video = torch.rand(num, sizes["video_dim"], generator=generator)
    text = caption_words(num, sizes["max_words"], sizes["we_dim"], sizes["mean_words"], generator)
    if pool:
        caption = torch.randint(0, pool, (v, k), generator=generator)
        rows = (torch.arange(v)[:, None] * pool + caption).flatten()
        video, text = video[rows], text[rows]
    else:
        caption = torch.arange(k).expand(v, k)
    return {
        "video": video.view(v, k, -1),
        "text": text.view(v, k, *text.shape[1:]),
        "caption": caption,
    }


class PlainStep:
    """The training step written plainly from the published equations, every slot projected.

    Thesis eq. 5.1-5.5, with nothing skipped: the sentence feature is
    c = max_w relu(W_t x_w + b_t) over all W word slots (padded ones too), each modality goes
    through z = W x + b, g = z * sigmoid(W_g z + b_g), g / ||g||; the scores are cosines; the
    loss is the alpha-weighted two-sided hinge sum divided by the weights' sum; torch's
    default Adam (as the reference's; tensor by tensor on a CPU) updates its own copy of the
    weights. Every pair of the batch is embedded, repeats too. It is what `Net` +
    `MaxMarginRankingLoss` + `train_step` must equal, and what the bench measures them
    against.

    Args:
        net: the model whose current weights are copied (moved to `device`).
        config: margin, hard-negative rate and learning rate (the thesis weighting).
        device: where the copy lives.
    """

    def __init__(self, net: Net, config: TrainConfig, device: torch.device):
        self.config = config
        self.device = device
        self.params = {
            name: p.detach().to(device, copy=True).requires_grad_(True)
            for name, p in net.named_parameters()
            if p.requires_grad
        }
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=config.lr)

    def similarity(self, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """[N, video_dim], [N, W, we_dim] -> [N_text, N_video] cosine similarities."""
        p = self.params
        words = torch.relu(text @ p["text_pooling.fc.weight"].t() + p["text_pooling.fc.bias"])
        sentence = words.max(dim=1).values  # (N, S): max over all W slots
        text_emb = self._gated(sentence, "GU_text")
        video_emb = self._gated(video, "GU_video")
        return text_emb @ video_emb.t()

    def _gated(self, x: torch.Tensor, unit: str) -> torch.Tensor:
        p = self.params
        z = x @ p[f"{unit}.fc.weight"].t() + p[f"{unit}.fc.bias"]
        g = z * torch.sigmoid(z @ p[f"{unit}.cg.fc.weight"].t() + p[f"{unit}.cg.fc.bias"])
        return g / g.norm(dim=1, keepdim=True)

    def loss(self, sim: torch.Tensor, pairs_per_video: int) -> torch.Tensor:
        """Eq. 5.4-5.5 over a [v k, v k] similarity matrix, divided by the weights' sum."""
        b, k = sim.shape[0], pairs_per_video
        v, rate, margin = b // k, self.config.hard_negative_rate, self.config.margin
        alpha = rate * k * (v - 1) / ((1 - rate) * (k - 1)) if v > 1 and k > 1 else 1.0
        video = torch.arange(b, device=sim.device) // k
        same = (video[:, None] == video[None, :]).to(sim.dtype)
        weights = (alpha * same + (1 - same)) * (1 - torch.eye(b, device=sim.device))
        positive = sim.diagonal()
        hinges = torch.relu(margin + sim - positive[:, None]) + torch.relu(
            margin + sim - positive[None, :]
        )
        return (weights * hinges).sum() / weights.sum()

    def step(self, batch: dict) -> torch.Tensor:
        """One optimisation step on a loader batch; returns the loss, detached."""
        video = batch["video"].to(self.device, non_blocking=True)
        text = batch["text"].to(self.device, non_blocking=True)
        sim = self.similarity(video.flatten(0, 1), text.flatten(0, 1))
        loss = self.loss(sim, video.shape[1])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def step_gflop(num: int, projected_words: int, sizes: dict, pooled_dim: int) -> float:
    """Matmul GFLOP of one training step (forward + backward) when `projected_words` word
    vectors go through the sentence projection; text and clip inputs need no gradient."""
    e, we, vd = sizes["embd_dim"], sizes["we_dim"], sizes["video_dim"]
    pooling = 2 * 2 * projected_words * we * pooled_dim  # forward, weight gradient
    text_unit = 3 * 2 * num * pooled_dim * e + 3 * 2 * num * e * e  # fc and gate: fwd, dW, dx
    video_unit = 2 * 2 * num * vd * e + 3 * 2 * num * e * e  # no dx for the clip features
    scores = 3 * 2 * num * num * e
    return (pooling + text_unit + video_unit + scores) / 1e9


def _timed(fn, dev: torch.device) -> tuple[float, float, float | None]:
    """(seconds, loss, peak GPU MB or None) of one call of `fn` returning a loss tensor."""
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    sync(dev)
    tick = time.perf_counter()
    loss = fn()
    sync(dev)
    seconds = time.perf_counter() - tick
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
    return seconds, float(loss), peak


def _matmul_s(num: int, dim: int, dev: torch.device, generator: torch.Generator) -> float:
    """Seconds of one [num, dim] x [dim, dim] float32 matmul (the step's typical shape)."""
    a = torch.rand(num, dim, generator=generator).to(dev)
    w = torch.rand(dim, dim, generator=generator).to(dev)
    a @ w  # first call: kernel choice
    sync(dev)
    tick = time.perf_counter()
    a @ w
    sync(dev)
    return time.perf_counter() - tick


def compare_steps(steps_by_name: dict, sizes: dict, steps: int, warmup: int, seed: int, dev):
    """Alternating rounds on the same batches: each named step in turn, on the same batch.

    `steps_by_name` maps a name to a function of a batch returning the loss ("plain" first).
    All start from the same weights and see the same batches, so their losses agree
    throughout; the largest difference from the plain step is reported. A matmul of the
    step's shape is timed in each round too, as the machine's reference rate at that moment.

    Returns:
        {name: [s], ..., "matmul": [s], "loss_diff", "peak_mb": {name: MB}, "real_words",
        "distinct_words", "slots", "pairs", "distinct_pairs"} over the timed rounds (the word
        and pair counts summed).
    """
    generator = torch.Generator().manual_seed(seed)
    times = {name: [] for name in (*steps_by_name, "matmul")}
    peaks = dict.fromkeys(steps_by_name, 0.0)
    counts = dict.fromkeys(("real_words", "distinct_words", "slots", "pairs", "distinct_pairs"), 0)
    loss_diff = 0.0
    for round_ in range(warmup + steps):
        batch = _batch(sizes, generator)
        if dev.type == "cuda":  # the training loader pins its batches too
            batch = {name: tensor.pin_memory() for name, tensor in batch.items()}
        losses = {}
        for name, step in steps_by_name.items():
            seconds, losses[name], peak = _timed(lambda b=batch, f=step: f(b), dev)
            if round_ >= warmup:
                times[name].append(seconds)
                peaks[name] = max(peaks[name], peak or 0.0)
        plain_loss = losses[next(iter(steps_by_name))]
        loss_diff = max(loss_diff, *(abs(loss - plain_loss) for loss in losses.values()))
        if round_ < warmup:
            continue
        pairs = batch["video"].shape[0] * batch["video"].shape[1]
        times["matmul"].append(_matmul_s(pairs, sizes["embd_dim"], dev, generator))
        for name, count in _word_and_pair_counts(batch).items():
            counts[name] += count
    return {**times, "loss_diff": loss_diff, "peak_mb": peaks, **counts}


def _word_and_pair_counts(batch: dict) -> dict:
    real = (batch["text"] != 0).any(dim=-1).flatten(0, 1)  # (v k, W)
    first, _ = distinct_rows(pair_keys(batch["caption"]))  # the rows the fast step embeds
    return {
        "real_words": int(real.sum()),
        "distinct_words": int(real[first].sum()),
        "slots": real.numel(),
        "pairs": real.shape[0],
        "distinct_pairs": first.numel(),
    }


def _ratios(rounds: dict, name: str) -> list[float]:
    return [plain / step for plain, step in zip(rounds["plain"], rounds[name])]


def _step_figures(rounds: dict, sizes: dict, pooled_dim: int) -> dict:
    pairs = sizes["videos_per_batch"] * sizes["pairs_per_video"]
    num_rounds = len(rounds["fast"])
    medians = {name: statistics.median(rounds[name]) for name in _STEPS if name in rounds}
    plain_s, fast_s = medians["plain"], medians["fast"]
    distinct = rounds["distinct_pairs"] / num_rounds
    gflop = {  # per step; words and pairs are the per-round means
        "plain": step_gflop(pairs, pairs * sizes["max_words"], sizes, pooled_dim),
        "packed": step_gflop(pairs, round(rounds["real_words"] / num_rounds), sizes, pooled_dim),
        "fast": step_gflop(
            round(distinct), round(rounds["distinct_words"] / num_rounds), sizes, pooled_dim
        ),
    }
    matmul_rate = 2 * pairs * sizes["embd_dim"] ** 2 / 1e9 / statistics.median(rounds["matmul"])
    fast_ratios = _ratios(rounds, "fast")
    figures = {
        "rounds": num_rounds,
        "mean_words": sizes["mean_words"],
        "max_words": sizes["max_words"],
        "captions_per_video": sizes["captions_per_video"],
        "real_words_per_caption": rounds["real_words"] / rounds["slots"] * sizes["max_words"],
        "distinct_pair_fraction": distinct / pairs,
        "train_step_s": fast_s,
        "train_pairs_per_s": pairs / fast_s,
        "plain_pairs_per_s": pairs / plain_s,
        # Medians of the per-round ratios: the two steps of a round share the machine's state.
        "speedup_vs_plain": statistics.median(fast_ratios),
        "speedup_rounds": fast_ratios,
        "loss_max_abs_diff": rounds["loss_diff"],
        "matmul_gflop_per_s": matmul_rate,
    }
    for name, seconds in medians.items():
        figures[f"{name}_step_s"] = seconds
        figures[f"{name}_step_gflop"] = gflop[name]
        figures[f"{name}_step_gflop_per_s"] = gflop[name] / seconds
    if "packed" in medians:
        packed_ratios = _ratios(rounds, "packed")
        figures["packed_speedup_vs_plain"] = statistics.median(packed_ratios)
        figures["packed_speedup_rounds"] = packed_ratios
    return figures


def _embed_and_eval(net: Net, sizes: dict, options: dict, dev: torch.device, generator) -> dict:
    """Embeddings/s of each branch (eval mode, no gradient) and a full two-way ranking."""
    net.eval()
    num, embd_dim = options["embed_batch"], sizes["embd_dim"]
    video = torch.rand(num, sizes["video_dim"], generator=generator).to(dev)
    words = caption_words(num, sizes["max_words"], sizes["we_dim"], sizes["mean_words"], generator)
    text = words.to(dev)
    timings = {}
    with torch.no_grad():
        for name, fn, x in (("video", net.embed_video, video), ("text", net.embed_text, text)):
            seconds = time_calls(lambda f=fn, x=x: f(x), options["embed_batches"], 1, dev)
            timings[name] = num * len(seconds) / sum(seconds)
    eval_size = options["eval_size"]
    emb_text = torch.nn.functional.normalize(
        torch.randn(eval_size, embd_dim, generator=generator), dim=1
    )
    emb_video = torch.nn.functional.normalize(
        emb_text + 0.5 * torch.randn(eval_size, embd_dim, generator=generator), dim=1
    )
    sync(dev)
    tick = time.perf_counter()
    retrieval_metrics(emb_text.to(dev), emb_video.to(dev), options["chunk_size"], dev)
    sync(dev)
    return {
        "embed_video_per_s": timings["video"],
        "embed_text_per_s": timings["text"],
        "eval_size": eval_size,
        "eval_s": time.perf_counter() - tick,
    }


def run_bench(
    embd_dim: int = 4096,
    video_dim: int = 4096,
    we_dim: int = 300,
    max_words: int = 20,
    videos_per_batch: int = 32,
    pairs_per_video: int = 64,
    steps: int = 5,
    warmup: int = 1,
    embed_batch: int = 2048,
    embed_batches: int = 3,
    eval_size: int = 10_000,
    chunk_size: int = 1024,
    device: str = "auto",
    seed: int = 0,
    mean_words: float = 4.0,
    captions_per_video: int = CAPTIONS_PER_VIDEO,
    packed: bool = True,
) -> dict:
    """Times the training step (`train.train_step`) against `PlainStep` in alternating rounds,
    then embedding and a full ranking; returns the figures (medians over the rounds).

    Each video of a batch has `captions_per_video` pairs to draw k from with replacement (0:
    every pair distinct). `packed` also times `train_step` told nothing of repeats (its own
    copy of the model and Adam), which shows the packed pooling's share of the speed-up.

    Returns:
        {"device", "device_name", "device_memory_gb", "train_pairs_per_s", "train_step_s",
        "plain_step_s", "speedup_vs_plain", "loss_max_abs_diff", "embed_video_per_s",
        "embed_text_per_s", "eval_s", "eval_size", ...}.
    """
    dev = pick_device(device)
    torch.manual_seed(seed)
    sizes = {
        "embd_dim": embd_dim,
        "video_dim": video_dim,
        "we_dim": we_dim,
        "max_words": max_words,
        "mean_words": mean_words,
        "videos_per_batch": videos_per_batch,
        "pairs_per_video": pairs_per_video,
        "captions_per_video": captions_per_video,
    }
    net = Net(embd_dim=embd_dim, video_dim=video_dim, we_dim=we_dim)
    # The training step itself, with the training defaults (Adam 1e-4, margin 0.1, p = 0.5).
    config = TrainConfig(captions="", features_2d="", word2vec="", output_dir="")
    plain = PlainStep(net, config, dev)  # same starting weights as the model
    steps_by_name = {"plain": plain.step}
    if packed:
        packed_parts = build_parts(copy.deepcopy(net), config, dev)
        steps_by_name["packed"] = lambda batch: train_step(
            packed_parts, {k: v for k, v in batch.items() if k != "caption"}
        )
    parts = build_parts(net, config, dev)
    steps_by_name["fast"] = lambda batch: train_step(parts, batch)
    rounds = compare_steps(steps_by_name, sizes, steps, warmup, seed, dev)
    del plain, steps_by_name  # their weights and Adam states are not needed any more
    pooled_dim = net.text_pooling.fc.out_features
    figures = {
        **describe_device(dev),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        **{k: sizes[k] for k in ("embd_dim", "video_dim", "videos_per_batch", "pairs_per_video")},
        **_step_figures(rounds, sizes, pooled_dim),
    }
    generator = torch.Generator().manual_seed(seed + 1)
    options = {
        "embed_batch": embed_batch,
        "embed_batches": embed_batches,
        "eval_size": eval_size,
        "chunk_size": chunk_size,
    }
    figures.update(_embed_and_eval(net, sizes, options, dev, generator))
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if dev.type == "cuda":
        # The steps reset the peak counter, so the run's peak is the largest of the parts'.
        peaks = (torch.cuda.max_memory_allocated(dev) / 2**20, *rounds["peak_mb"].values())
        figures["peak_gpu_mb"] = max(peaks)
        for name, peak in rounds["peak_mb"].items():
            figures[f"{name}_peak_gpu_mb"] = peak
    return figures


_STEP_LABELS = {
    "plain": "plain step (all slots)",
    "packed": "packed words only",
    "fast": "fast step (+ repeats once)",
}


def _timed_steps(figures: dict) -> list[str]:
    return [name for name in _STEPS if f"{name}_step_s" in figures]


def _step_row(figures: dict, name: str) -> str:
    row = f"{figures[f'{name}_step_s']:.3f} s, {figures[f'{name}_step_gflop']:,.1f} GFLOP"
    if name == "packed":
        row += f", {figures['packed_speedup_vs_plain']:.2f}x plain"
    return row


def print_report(figures: dict) -> None:
    """The human table, then the figures as one JSON line (last)."""
    memory = figures["device_memory_gb"]
    rows = [
        ("device", f"{figures['device']}: {figures['device_name']}"),
        ("memory", "?" if memory is None else f"{memory:,.1f} GB"),
        ("host", f"{platform.machine()}, {figures['threads']} torch threads"),
        ("model", f"{figures['video_dim']}-d clips -> {figures['embd_dim']}-d embedding"),
        ("batch", f"v={figures['videos_per_batch']} videos x k={figures['pairs_per_video']} pairs"),
        (
            "captions",
            f"{figures['real_words_per_caption']:.2f} real words of {figures['max_words']} slots",
        ),
        (
            "pairs",
            f"k drawn with replacement from {figures['captions_per_video']} per video: "
            f"{figures['distinct_pair_fraction']:.1%} distinct"
            if figures["captions_per_video"]
            else "all distinct",
        ),
        ("rounds", f"{figures['rounds']} ({', '.join(_timed_steps(figures))} in turn; medians)"),
        *((_STEP_LABELS[name], _step_row(figures, name)) for name in _timed_steps(figures)),
        ("speedup vs plain", f"{figures['speedup_vs_plain']:.2f}x"),
        ("loss max |fast - plain|", f"{figures['loss_max_abs_diff']:.2e}"),
        ("matmul rate (same run)", f"{figures['matmul_gflop_per_s']:,.0f} GFLOP/s"),
        ("fast step rate", f"{figures['fast_step_gflop_per_s']:,.0f} GFLOP/s"),
        ("train pairs/s", f"{figures['train_pairs_per_s']:,.0f}"),
        ("embed video/s", f"{figures['embed_video_per_s']:,.0f}"),
        ("embed text/s", f"{figures['embed_text_per_s']:,.0f}"),
        (
            f"eval {figures['eval_size']}x{figures['eval_size']}",
            f"{figures['eval_s']:.2f} s (both directions)",
        ),
        ("peak RSS", f"{figures['peak_rss_mb']:,.0f} MB"),
    ]
    if "peak_gpu_mb" in figures:
        rows.append(("peak GPU memory", f"{figures['peak_gpu_mb']:,.0f} MB"))
        peaks = (f"{n} {figures[f'{n}_peak_gpu_mb']:,.0f} MB" for n in _timed_steps(figures))
        rows.append(("step peak GPU memory", ", ".join(peaks)))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps(figures))
