"""One frame's split between training and rendering, as both viewers run it (the GGUI window,
gui/app.py, and the browser viewer, viewer/session.py): training steps as the schedule and
the frame budget allow, then the view refined with what is left, no finer while training
than can be redone in REFRESH_S. Plain Python around viewing/schedule.py and viewing/view.py."""
import time

SETTLE_S = 2.0  # after a camera move, training waits this long at most for the view to refine
REFRESH_S = 4.0  # while training, the view refines only as far as it can be redone in this long


def train_frame(schedule, budget, view, step, moving: bool, last_render_s: float) -> tuple[float, int]:
    """This frame's training: ``schedule.steps_for_frame(moving)`` steps, or as many as
    ``budget`` pays for when that is None; ``step()`` runs one and returns False to end the
    frame's training. A frame that trained marks the view for a refresh. Returns (seconds, steps)."""
    fixed = schedule.steps_for_frame(moving)
    if fixed == 0:
        budget.forfeit()
        return 0.0, 0
    start, steps = time.perf_counter(), 0
    if fixed is None:
        budget.grant(last_render_s)
    while (steps < fixed) if fixed is not None else budget.wants_step():
        t = time.perf_counter()
        ok = step()
        steps += 1
        if fixed is None:
            budget.paid(time.perf_counter() - t)
        if not ok:
            break
    if steps:
        view.refresh()
    return time.perf_counter() - start, steps


def limit_view(view, budget, training: bool, render_budget_s: float | None = None) -> None:
    """While training, the field changes under the view: refine only to the level that is
    redone within REFRESH_S at this frame rate's rendering time (a fresh picture over a
    sharp stale one); paused, viewing, or on a GPU, to full resolution."""
    if not training or view.whole:
        view.limit_refresh(None)
        return
    render_s = render_budget_s or (1.0 - budget.train_share) * budget.work_s()
    view.limit_refresh(REFRESH_S * render_s / budget.period_s())  # the frames there are in REFRESH_S


def render_budget(view, budget, train_s: float, fixed_s: float | None = None) -> float | None:
    """Seconds for refining the view this frame: ``fixed_s`` when given, none on a GPU
    (everything at once), else what the frame budget leaves."""
    if fixed_s is not None:
        return fixed_s
    if view.whole:
        return None
    return budget.render_s(train_s)
