"""One training engine for every experiment: :func:`fit`."""

from wsjax.train.loop import (LOOPS, ON_NONFINITE, NonFiniteLossError, TrainResult, classifier, evaluate, fit,
                              step_key)
