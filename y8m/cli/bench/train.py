"""`y8m bench train`: training examples/s of a model against the machine's dense matmul rate,
and the step with the fused Adam that training uses against the same step with Keras' Adam."""

from __future__ import annotations

import inspect
import json
import statistics
import time

import numpy as np

from y8m.cli.bench.device import describe, pick_device
from y8m.data import specs

_MATMUL_OPS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum")


def _static(shape) -> list[int] | None:
    dims = shape.as_list() if shape.rank is not None else None
    return None if dims is None or any(d is None for d in dims) else dims


def _op_flops(op) -> float:
    """FLOPs (multiply-adds x 2) of one matmul-like op from its static shapes."""
    if op.type == "Einsum":
        out = _static(op.outputs[0].shape)
        ins = [_static(t.shape) for t in op.inputs]
        if out is None or any(i is None for i in ins):
            return 0.0
        equation = op.get_attr("equation").decode()
        lhs, rhs = equation.split("->")
        sizes = {}
        for term, shape in zip(lhs.split(","), ins):
            for ch, d in zip(term.replace("...", ""), shape[-len(term.replace("...", "")) :]):
                sizes[ch] = d
        return 2.0 * float(np.prod([sizes[c] for c in set(lhs.replace(",", "").replace(".", ""))]))
    a, b = (_static(t.shape) for t in op.inputs[:2])
    out = _static(op.outputs[0].shape)
    if a is None or b is None or out is None:
        return 0.0
    if op.type == "MatMul":
        k = a[0] if op.get_attr("transpose_a") else a[1]
    else:
        adj = op.get_attr("adj_x") if "adj_x" in op.node_def.attr else False
        k = a[-2] if adj else a[-1]
    return 2.0 * float(np.prod(out)) * k


def graph_flops(graph, loop_iterations: int) -> float:
    """Sums matmul FLOPs over a graph; while-loop bodies (RNN time steps) count `loop_iterations` times."""
    total = 0.0
    functions = getattr(graph, "_functions", {})
    for op in graph.get_operations():
        if op.type in _MATMUL_OPS:
            total += _op_flops(op)
        elif op.type in ("While", "StatelessWhile"):
            body = op.get_attr("body").name
            fn = functions.get(body) or functions.get(body.encode())
            if fn is not None and hasattr(fn, "graph"):
                total += loop_iterations * graph_flops(fn.graph, loop_iterations)
        elif op.type in ("PartitionedCall", "StatefulPartitionedCall"):
            name = op.get_attr("f").name
            fn = functions.get(name) or functions.get(name.encode())
            if fn is not None and hasattr(fn, "graph"):
                total += graph_flops(fn.graph, loop_iterations)
    return total


def matmul_rate(size: int = 2048, repeats: int = 10, dtype: str = "float32") -> float:
    """FLOP/s of a dense [size x size] @ [size x size] product in this process."""
    import tensorflow as tf

    a = tf.random.normal([size, size], dtype=dtype)
    b = tf.random.normal([size, size], dtype=dtype)
    mm = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    mm(a, b).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        mm(a, b).numpy()
    return 2.0 * size**3 * repeats / (time.perf_counter() - start)


def synthetic_batch(
    model_inputs: dict, batch_size: int, frames: int, num_classes: int, seed: int = 0
):
    rng = np.random.default_rng(seed)
    batch = {}
    for name, tensor in model_inputs.items():
        if name == "num_frames":
            batch[name] = np.full([batch_size], frames, np.int32)
        else:
            dims = [d for d in tensor.shape[1:]]
            shape = [batch_size] + [frames if d is None else int(d) for d in dims]
            batch[name] = rng.standard_normal(shape).astype(np.float32)
    labels = (rng.random([batch_size, num_classes]) < 3 / num_classes).astype(np.float32)
    return batch, labels


def bench_train(
    model: str = "gated_netvlad",
    batch_size: int = 80,
    num_classes: int = 3862,
    frames: int | None = None,
    steps: int = 10,
    warmup: int = 2,
    jit_compile: bool = False,
    mixed_precision: bool = False,
    matmul_size: int = 2048,
    seed: int = 0,
    device: str = "auto",
    compare_adam: bool = True,
    **overrides,
) -> dict:
    """Times the training step `y8m train` runs (forward, loss with regularisation, backward,
    clipping, Adam) on random inputs of the real shapes.

    Args:
        model: registry name.
        batch_size: videos per step.
        num_classes: output classes.
        frames: frames per video (the model's sample_frames, or 300 for ordered models).
        steps: timed steps (after `warmup`).
        jit_compile: XLA-compile the step.
        mixed_precision: bfloat16 (CPU) / float16 (GPU) compute.
        matmul_size: size of the reference dense matmul.
        device: auto (the first GPU TensorFlow sees, else the CPU), cpu or gpu. The step, the
            matmul and the batch-norm pass all run there; the JSON names it (device,
            device_name, device_memory_gb), with the same keys on every device.
        compare_adam: also time the same step with keras.optimizers.Adam instead of the
            fused Adam that training uses, alternating step by step on the same weights.
        **overrides: model hyper-parameters.
    """
    from y8m.run.training.state import kept_policy

    place = pick_device(device)
    with kept_policy(), place["scope"]():
        return _bench(
            model,
            batch_size,
            num_classes,
            frames,
            steps,
            warmup,
            jit_compile,
            mixed_precision,
            matmul_size,
            seed,
            compare_adam,
            overrides,
        )


def _train_flags() -> dict:
    """`y8m train`'s defaults: the bench runs the step with the same settings."""
    from y8m.run.train import train

    return {
        n: p.default
        for n, p in inspect.signature(train).parameters.items()
        if p.default is not p.empty
    }


def _bench(
    model,
    batch_size,
    num_classes,
    frames,
    steps,
    warmup,
    jit_compile,
    mixed_precision,
    matmul_size,
    seed,
    compare_adam,
    overrides,
) -> dict:
    import keras
    import tensorflow as tf

    from y8m.run import rundir
    from y8m.run.training.state import make_optimizer, use_mixed_precision
    from y8m.run.training.step import make_train_step

    if mixed_precision:
        use_mixed_precision()
    keras.utils.set_random_seed(seed)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    names, sizes = overrides.pop("feature_names", None), overrides.pop("feature_sizes", None)
    mode = rundir.input_mode(model, overrides)
    features = specs.parse_feature_list(names, sizes, frame_level=mode["frame_level"])
    flags = _train_flags()
    config = {
        "model": model,
        "num_classes": int(num_classes),
        "overrides": overrides,
        "data": {
            "feature_names": [f.name for f in features],
            "feature_sizes": [f.size for f in features],
        },
    }
    net = rundir.build_model(config)
    frames = int(frames or mode.get("num_samples") or specs.MAX_FRAMES)
    inputs = net.input if isinstance(net.input, dict) else dict(zip(net.input_names, net.inputs))
    batch, labels = synthetic_batch(inputs, int(batch_size), frames, int(num_classes), seed)
    batch = {k: tf.constant(v) for k, v in batch.items()}
    labels = tf.constant(labels)
    # The step `y8m train` runs (FusedAdam) and, to measure it against, the same step with
    # `keras.optimizers.Adam`: both update the same weights, alternating step by step.
    variants = {"y8m": True, "keras_adam": False} if compare_adam else {"y8m": True}
    step_fns = {}
    for name, fused in variants.items():
        optimizer, _ = make_optimizer(flags, int(batch_size), fused=fused)
        step_fns[name] = make_train_step(
            net,
            optimizer,
            tf.distribute.get_strategy(),
            clip_norm=flags["clip_gradient_norm"],
            jit_compile=bool(jit_compile),
        )
    forward = tf.function(lambda x: net(x, training=False)).get_concrete_function(batch)
    forward_flops = graph_flops(forward.graph, frames) / int(batch_size)
    times = _alternate(step_fns, batch, labels, int(steps), int(warmup))
    figures = _report(
        model,
        net,
        batch_size,
        frames,
        times,
        forward_flops,
        matmul_size,
        jit_compile,
        mixed_precision,
    )
    figures.update(_precise_bn_cost(net, batch, max(int(steps) // 2, 2)))
    figures.update(describe())
    print(
        f"device: {figures['device']} ({figures['device_name']}, {figures['device_memory_gb']} GB)"
    )
    print(json.dumps(figures))
    return figures


def _precise_bn_cost(net, batch, batches: int) -> dict:
    """Seconds that re-estimating the batch-norm statistics (`y8m train --precise_bn_batches`)
    takes per 200 batches: the difference between runs of 1 and 1 + `batches` batches, so the
    pass's tracing (paid once per estimate) cancels."""
    import itertools

    from y8m.run.precise_bn import estimate

    one = estimate(net, [batch], 1, progress=False)
    if not one["layers"]:
        return {"precise_bn_s_per_200_batches": 0.0}
    more = estimate(net, itertools.repeat(batch), 1 + batches, progress=False)
    per_200 = max(more["seconds"] - one["seconds"], 0.0) / batches * 200
    print(f"precise batch-norm statistics: {per_200:.1f} s per 200 batches of {net.name}")
    return {"precise_bn_s_per_200_batches": round(per_200, 2)}


def _alternate(step_fns: dict, batch, labels, steps: int, warmup: int) -> dict:
    """{name: [seconds of each timed step]}: one step of each variant in turn, `warmup`
    untimed rounds first."""
    times = {name: [] for name in step_fns}
    for round_ in range(warmup + steps):
        for name, step_fn in step_fns.items():
            start = time.perf_counter()
            step_fn(batch, labels).numpy()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def _report(
    model,
    net,
    batch_size,
    frames,
    times,
    forward_flops,
    matmul_size,
    jit_compile,
    mixed_precision,
) -> dict:
    step_s = statistics.median(times["y8m"])
    examples_per_s = int(batch_size) / step_s
    flops_per_example = 3.0 * forward_flops  # backward costs about twice the forward pass
    achieved = flops_per_example * examples_per_s
    peak = matmul_rate(int(matmul_size))
    figures = {
        "model": model,
        "params": int(net.count_params()),
        "batch_size": int(batch_size),
        "frames": frames,
        "examples_per_s": round(examples_per_s, 2),
        "step_ms": round(1000 * step_s, 1),
        "flops_per_example": float(f"{flops_per_example:.4g}"),
        "flops_per_s": float(f"{achieved:.4g}"),
        "matmul_flops_per_s": float(f"{peak:.4g}"),
        "ratio": round(achieved / peak, 3),
        "jit_compile": bool(jit_compile),
        "mixed_precision": bool(mixed_precision),
        "steps": len(times["y8m"]),
    }
    if "keras_adam" in times:
        keras_s = statistics.median(times["keras_adam"])
        per_round = [k / y for k, y in zip(times["keras_adam"], times["y8m"])]
        figures.update(
            {
                "keras_adam_step_ms": round(1000 * keras_s, 1),
                "keras_adam_examples_per_s": round(int(batch_size) / keras_s, 2),
                "keras_adam_ratio": round(flops_per_example * int(batch_size) / keras_s / peak, 3),
                "speedup_vs_keras_adam": round(statistics.median(per_round), 3),
                "speedup_rounds": [round(r, 3) for r in per_round],
            }
        )
    print(
        f"{'model':<16} {'params':>12} {'ex/s':>8} {'GFLOP/ex':>9} {'GFLOP/s':>8} {'matmul GFLOP/s':>14} {'ratio':>6}"
    )
    print(
        f"{model:<16} {figures['params']:>12,} {examples_per_s:>8.1f} {flops_per_example / 1e9:>9.2f} "
        f"{achieved / 1e9:>8.1f} {peak / 1e9:>14.1f} {figures['ratio']:>6.2f}"
    )
    if "keras_adam" in times:
        print(
            f"same step with keras.optimizers.Adam: {figures['keras_adam_examples_per_s']:.1f} "
            f"ex/s, ratio {figures['keras_adam_ratio']:.2f}; fused Adam "
            f"{figures['speedup_vs_keras_adam']:.2f}x (median of {len(times['y8m'])} "
            "alternating steps)"
        )
    return figures
