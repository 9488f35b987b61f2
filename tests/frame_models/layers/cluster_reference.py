"""Numpy versions of the cluster-pooling formulas (thesis eq. 3.8-3.13), one video at a time."""

from __future__ import annotations

import numpy as np

from tests.frame_models.helpers import batch_norm_inference, bn_params, l2n, softmax, weight


def assignment_params(layer) -> dict:
    params = {"W": weight(layer, "cluster_weights")}
    if layer.use_batch_norm:
        params["bn"] = bn_params(layer, "assignment_bn")
    else:
        params["b"] = weight(layer, "cluster_biases")
    return params


def assign(x: np.ndarray, params: dict) -> np.ndarray:
    """(N, D) real frames of one video -> (N, K) soft assignments (eq. 3.8)."""
    logits = x @ params["W"]
    logits = batch_norm_inference(logits, params["bn"]) if "bn" in params else logits + params["b"]
    return softmax(logits)


def per_video(x, num_frames, pool):
    """Applies `pool((N, D) real frames) -> vector` to every video of a padded batch."""
    x = np.asarray(x, np.float64)
    return np.stack([pool(x[b, : num_frames[b]]) for b in range(len(x))])


def netvlad(x, num_frames, layer):
    params = assignment_params(layer)
    centers = weight(layer, "cluster_centers")  # (D, K)

    def pool(v):
        a = assign(v, params)
        vlad = np.zeros_like(centers)
        for k in range(centers.shape[1]):
            residuals = v - centers[:, k]  # (N, D): x_i - c_k
            vlad[:, k] = (a[:, k : k + 1] * residuals).sum(axis=0)
        return l2n(l2n(vlad, axis=0).reshape(-1))

    return per_video(x, num_frames, pool)


def netrvlad(x, num_frames, layer):
    params = assignment_params(layer)

    def pool(v):
        a = assign(v, params)
        rvlad = np.einsum("nk,nd->dk", a, v)
        return l2n(l2n(rvlad, axis=0).reshape(-1))

    return per_video(x, num_frames, pool)


def netfv(x, num_frames, layer):
    params = assignment_params(layer)
    centers = weight(layer, "cluster_centers")
    sigma = weight(layer, "covariance_weights") ** 2 + 1e-6

    def pool(v):
        a = assign(v, params)
        fv1 = np.zeros_like(centers)
        fv2 = np.zeros_like(centers)
        for k in range(centers.shape[1]):
            z = (v - centers[:, k]) / sigma[:, k]  # (N, D)
            fv1[:, k] = (a[:, k : k + 1] * z).sum(axis=0)  # eq. 3.11
            fv2[:, k] = (a[:, k : k + 1] * (z**2 - 1.0)).sum(axis=0)  # eq. 3.12
        return np.concatenate([l2n(l2n(fv1, axis=0).reshape(-1)), l2n(fv2.reshape(-1))])

    return per_video(x, num_frames, pool)


def soft_bow(x, num_frames, layer):
    params = assignment_params(layer)
    return per_video(x, num_frames, lambda v: l2n(assign(v, params).sum(axis=0)))
