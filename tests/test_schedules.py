"""The learning-rate schedules every training loop uses, checked against values worked by hand."""
import math

import pytest
import torch

from sc_eval.runtime.schedules import warmup_cosine, warmup_linear


def test_warmup_then_cosine_by_hand():
    f = warmup_cosine(warmup=2, total=10)
    # warm-up from lr/2: step 0 already trains; the peak at the last warm-up step
    assert [f(0), f(1)] == [0.5, 1.0]
    # cosine over the 8 steps after warm-up: 1 at step 2, 0.5 half-way (step 6), 0 at step 10
    assert f(2) == 1.0
    assert f(6) == pytest.approx(0.5, abs=1e-15)
    assert f(4) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert f(10) == pytest.approx(0.0, abs=1e-15)
    assert f(25) == f(10)  # held after the end


def test_cosine_floor_by_hand():
    f = warmup_cosine(warmup=2, total=10, floor=0.1)
    assert [f(0), f(1), f(2)] == [0.5, 1.0, 1.0]
    assert f(6) == pytest.approx(0.55)  # half-way between 1 and the floor
    assert f(10) == pytest.approx(0.1) and f(40) == f(10)


def test_warmup_then_linear_by_hand():
    f = warmup_linear(warmup=4, total=10)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    # (10 - s) / 6 after warm-up, 0 at the end and after it
    assert [f(s) for s in (4, 7, 10, 12)] == [1.0, 0.5, 0.0, 0.0]


def test_no_warmup_starts_at_the_peak():
    assert warmup_cosine(0, 4)(0) == 1.0 and warmup_linear(0, 4)(0) == 1.0


def test_a_resumed_scheduler_continues_the_same_learning_rates():
    """LambdaLR stores only its step: a scheduler rebuilt from the flags and loaded from a
    state dict gives the learning rates an uninterrupted one gives."""
    def run(steps, state=None):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(3, 12))
        if state is not None:
            opt.load_state_dict(state[0])
            sched.load_state_dict(state[1])
        lrs = []
        for _ in range(steps):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return lrs, (opt.state_dict(), sched.state_dict())

    whole, _ = run(12)
    first, state = run(5)
    rest, _ = run(7, state)
    assert first + rest == whole
    assert whole[:3] == pytest.approx([0.2 / 3, 0.2 * 2 / 3, 0.2])
