"""Knowledge distillation: a student trained on a teacher's outputs.

* :mod:`~wsjax.distill.losses`: Hinton's softened cross-entropy mixed with the hard-label
  loss, and Ba & Caruana's logit regression;
* :mod:`~wsjax.distill.hidden`: hidden states matched through a learned linear projection;
* :mod:`~wsjax.distill.attention`: attention maps matched row by row (MiniViT);
* :mod:`~wsjax.distill.teacher`: the teacher's logits computed once, kept on the device;
* :mod:`~wsjax.distill.objective`: a method as a ``loss_fn`` for :func:`wsjax.train.fit`,
  for any student, including one trained through a weight-space transform.

References: Hinton, Vinyals & Dean, `Distilling the Knowledge in a Neural Network
<https://arxiv.org/abs/1503.02531>`_, 2015; Ba & Caruana, `Do Deep Nets Really Need to be
Deep? <https://arxiv.org/abs/1312.6184>`_, 2014; Zhang et al., `MiniViT: Compressing Vision
Transformers with Weight Multiplexing <https://arxiv.org/abs/2204.07154>`_, 2022.
"""

from wsjax.distill.attention import attention_map_loss
from wsjax.distill.hidden import hidden_state_loss, init_projection, project
from wsjax.distill.losses import (hard_label_loss, hinton_loss, logit_regression_loss, soft_cross_entropy,
                                  soft_targets)
from wsjax.distill.objective import (METHODS, cached_loss_fn, method_loss, on_the_fly_loss_fn,
                                     transformed_apply)
from wsjax.distill.teacher import pack_targets, teacher_logits, unpack_targets
