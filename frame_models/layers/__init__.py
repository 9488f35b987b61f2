"""Serialisable Keras layers of the thesis's video classifiers (pooling, gating, classifiers)."""

from frame_models.layers.attention_pooling import AttentionPooling, TransformerEncoderBlock
from frame_models.layers.cluster_pooling import ClusterPooling
from frame_models.layers.context_gating import ContextGating
from frame_models.layers.dbof import DBoF, GatedDBoF, SoftDBoF
from frame_models.layers.frame_mask import FrameMask
from frame_models.layers.glu import GLU
from frame_models.layers.joint_l2_normalization import JointL2Normalization
from frame_models.layers.logistic_classifier import LogisticClassifier
from frame_models.layers.masked_average import MaskedAverage
from frame_models.layers.mixture_of_experts import MixtureOfExperts
from frame_models.layers.netfv import NetFV
from frame_models.layers.netrvlad import NetRVLAD
from frame_models.layers.netvlad import NetVLAD
from frame_models.layers.netvlagd import NetVLAGD
from frame_models.layers.nextvlad import NeXtVLAD
from frame_models.layers.online_distillation import OnlineDistillation
from frame_models.layers.pooled_representation import PooledRepresentation
from frame_models.layers.random_subsequence import RandomSubsequence
from frame_models.layers.se_gating import SEGating
from frame_models.layers.soft_bow import SoftBoW

__all__ = [
    "AttentionPooling",
    "ClusterPooling",
    "ContextGating",
    "DBoF",
    "FrameMask",
    "GatedDBoF",
    "GLU",
    "JointL2Normalization",
    "LogisticClassifier",
    "MaskedAverage",
    "MixtureOfExperts",
    "NetFV",
    "NetRVLAD",
    "NetVLAD",
    "NetVLAGD",
    "NeXtVLAD",
    "OnlineDistillation",
    "PooledRepresentation",
    "RandomSubsequence",
    "SEGating",
    "SoftBoW",
    "SoftDBoF",
    "TransformerEncoderBlock",
]
