"""Networks assembled from layers: torsos, policy heads and value heads; Polyak-averaged target networks."""
from tlrl.modules.heads import (CategoricalHead, ContinuousQ, DeterministicHead, GaussianHead, MultiCategoricalHead,
                                QHead, SquashedGaussianHead, ValueHead, make_policy_head)
from tlrl.modules.target import polyak_update
from tlrl.modules.torsos import DictTorso, KerasModule, as_module, make_torso, mlp, nature_cnn, small_cnn

__all__ = [
    "CategoricalHead", "MultiCategoricalHead", "GaussianHead", "SquashedGaussianHead", "DeterministicHead",
    "ValueHead", "QHead", "ContinuousQ", "make_policy_head", "DictTorso", "KerasModule", "as_module", "make_torso",
    "mlp", "nature_cnn", "small_cnn", "polyak_update",
]
