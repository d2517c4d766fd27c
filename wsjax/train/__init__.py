"""One training engine for every experiment: :func:`fit`."""

from wsjax.train.loop import LOOPS, TrainResult, classifier, evaluate, fit
