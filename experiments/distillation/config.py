"""The distillation study's config.

Run: ``wsjax run distillation [--quick] [--seed N]`` (or ``python -m experiments.distillation``);
writes ``experiments/results/distillation/`` (``rows.jsonl``, one ``artifacts/<key>.wsjax`` per
hashed student, ``results.md``, ``accuracy_vs_temperature.png``, ``accuracy_vs_size.png``).
Resumable: every finished run is a row of the store and is never recomputed.

Data: Fashion-MNIST; the first 55,000 training images train every net, the last 5,000 are the
validation set on which every choice is made (the teacher, the best temperature); the
10,000 test images only score.

Teacher: the candidate with the higher validation accuracy among LeNet-5 and the 2x1200 MLP
of Hinton et al. (both with the baseline study's dense recipe, Adam with cosine decay from
1e-3 to 1e-5, batch 100, LeNet-5 12 epochs and the MLP 30, trained on the same 55,000 images
and kept in the baseline store, :func:`wsjax.study.pretrained`). Its logits on the training
images are computed once and kept on the device (faster than calling the teacher in each
step: ``python -m benchmarks.distill_teacher``).

Students (ReLU MLPs, none regularised, as Hinton's 2x800): 2x800; 2x30; 1x1600, a single
wide hidden layer with as many weights as the 2x800 net (Ba & Caruana's shallow mimic); and
LeNet-300-100 hashed at 1/8 (HashedNets, one bucket vector per kernel, biases free; hash
seed = run seed), stored in a real ``.wsjax`` file and scored from it. Each is trained on
hard labels, by Hinton's loss at every temperature T with hard-label weight ``alpha`` = 0.1
(Hinton: a small weight on the hard targets works best), and by logit regression (no
labels). Recipe: Adam, cosine decay from 1e-3 to 1e-5 over 20 epochs, batch 100, the final
epoch's net scored (no early stopping: the schedule runs to a learning rate near zero; the
validation curve is kept in each row). Seeds ``seed, seed+1, seed+2``: each sets the
initialisation, the minibatch order and the hash; the hard-label and distilled nets of one
seed share all three (paired runs).

Decision rules (fixed before any run; ``mean`` and ``std`` over the seeds, test accuracy
unless said otherwise):

* T* of a student: the temperature with the highest mean *validation* accuracy.
* Distillation helps a student iff mean(T*) - mean(hard) > std(T*) + std(hard); the same rule
  says whether logit regression helps.
* Hinton's MNIST claim, in shape: holds iff distillation helps the 2x800 student and the
  distilled 2x800 closes at least half of the test-error gap between the hard-label 2x800 and
  the teacher ((146 - 74) / (146 - 67) = 0.91 in the paper).
* Ba & Caruana's claim: a net "matches" a reference iff its mean is at least the reference's
  mean minus the sum of their stds. The claim holds iff the logit-regression 1x1600 matches
  the hard-label 2x800 (a deep net of the same size) and the hard-label 1x1600 does not.
* The hashed net: distillation helps it at equal stored bytes iff the rule above holds and
  the hard-label and distilled files have the same size.

Expected: LeNet-5 is the teacher; distillation helps the 2x800 and the hashed student by a
few tenths of a point at a moderate T; the Ba & Caruana "only when" does not hold on
Fashion-MNIST, where one wide hidden layer trained on labels is already about as good as
two. Full run: about 2.5 hours on 2 CPU cores (about 20 minutes of it the LeNet-5 teacher; the
1x1600 and 2x800 students take about 6 s an epoch each, the others under 1 s).
"""

from __future__ import annotations

import dataclasses

from wsjax.study import dense_config

#: every student's widths (hidden layers, then the 10 outputs) and, if hashed, its compression
STUDENTS = {"2x800": (800, 800, 10), "2x30": (30, 30, 10), "1x1600": (1600, 10), "hashed300-100": (300, 100, 10)}
HASHED = {"hashed300-100": 1 / 8}
TEACHERS = ("lenet5", "mlp2x1200")


@dataclasses.dataclass(frozen=True)
class Config:
    students: tuple[str, ...] = tuple(STUDENTS)
    teachers: tuple[str, ...] = TEACHERS
    teacher_epochs: tuple[tuple[str, int], ...] = (("lenet5", 12), ("mlp2x1200", 30))
    temperatures: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 20.0)
    alpha: float = 0.1
    logit_regression: bool = True
    seeds: int = 3
    epochs: int = 20
    lr: float = 1e-3
    final_lr_fraction: float = 0.01
    batch_size: int = 100
    train_examples: int = 55_000
    validation: int = 5_000
    test_examples: int | None = None  # all
    quick: bool = False

    def methods(self) -> list[tuple[str, float | None]]:
        """``(method, temperature)`` of every way a student is trained."""
        return ([("hard", None)] + [("hinton", float(t)) for t in self.temperatures]
                + ([("logits", None)] if self.logit_regression else []))

    def teacher_units(self, dataset: str, seed: int) -> list[dict]:
        epochs = dict(self.teacher_epochs)
        return [{"kind": "teacher", "model": m, "validation": self.validation, "test_examples": self.test_examples,
                 "dense": dense_config(m, dataset, seed, self.quick, epochs[m], self.train_examples)}
                for m in self.teachers]

    def student_units(self, dataset: str, seed: int, teacher: dict) -> list[dict]:
        """Every (student, method, seed) run; ``teacher`` is the chosen teacher's unit."""
        return [{"kind": "student", "student": s, "features": list(STUDENTS[s]), "compression": HASHED.get(s),
                 "method": m, "temperature": t, "alpha": self.alpha if m == "hinton" else None,
                 "teacher": None if m == "hard" else teacher, "epochs": self.epochs, "lr": self.lr,
                 "final_lr_fraction": self.final_lr_fraction, "batch_size": self.batch_size,
                 "train_examples": self.train_examples, "validation": self.validation,
                 "test_examples": self.test_examples, "dataset": dataset, "seed": seed + i}
                for s in self.students for m, t in self.methods() for i in range(self.seeds)]


def full() -> Config:
    return Config()


def quick() -> Config:
    """Under a minute on an idle 2-core machine: the 2x1200 teacher alone (4 epochs on 5,000
    images), the 2x800 and hashed students on hard labels and at T=4, two seeds, 2 epochs."""
    return Config(students=("2x800", "hashed300-100"), teachers=("mlp2x1200",), teacher_epochs=(("mlp2x1200", 4),),
                  temperatures=(4.0,), logit_regression=False, seeds=2, epochs=2, train_examples=5000,
                  validation=1000, test_examples=2000, quick=True)


def smoke() -> Config:
    """Seconds, for the test suite: two cheap teacher candidates (LeNet-300-100 stands in for
    LeNet-5, whose training would dominate), a dense and the hashed student, hard labels and
    T=4 (the test adds logit regression as a resumed run), two seeds, a few steps."""
    return Config(students=("2x30", "hashed300-100"), teachers=("lenet300100", "mlp2x1200"),
                  teacher_epochs=(("lenet300100", 1), ("mlp2x1200", 1)), temperatures=(4.0,), logit_regression=False,
                  seeds=2, epochs=1, batch_size=50, train_examples=300, validation=200, test_examples=200, quick=True)
