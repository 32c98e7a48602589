"""A link's status in the words an operator understands (DESIGN.md §9), from the link's row:

| state      | the link                                                  |
|------------|-----------------------------------------------------------|
| failed     | `failed`: gave up after N of N attempts                   |
| dismissed  | `failed`, dismissed by an operator: bulk retries skip it  |
| queued     | pending_snapshot, no attempt failed yet in this episode   |
| retrying   | pending_snapshot after a failed attempt (waiting, or due) |
| delivering | scanning: a job is delivering it now                      |
| delivered  | synced                                                    |
| held       | pending_snapshot while its app's deliveries are held, or  |
|            | its repository's git circuit is open                      |

Every time is given in UTC with its zone, and relative where that helps.
"""
from datetime import datetime, timezone

# What each state is called on screen, for badges and filters.
LABELS = {"failed": "Failed", "dismissed": "Dismissed", "queued": "Queued", "retrying": "Retrying",
          "delivering": "Delivering", "delivered": "Delivered", "held": "Held"}


def clock(moment):
    """'10:42 UTC' today, else '2026-11-28 10:42 UTC'."""
    moment = moment.astimezone(timezone.utc)
    if moment.date() == datetime.now(timezone.utc).date():
        return moment.strftime("%H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def until(moment, now=None):
    """'in 3 min', 'in 45 s', 'in 2 h', or 'now' for a time that has passed."""
    seconds = int((moment - (now or datetime.now(timezone.utc))).total_seconds())
    if seconds <= 0:
        return "now"
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"in {round(seconds / size)} {unit}"
    return f"in {seconds} s"


def describe(link, max_attempts, now=None, delivery=None, circuit=None):
    """{state, label, text, action} for a link row (status, retry_count, next_attempt_at,
    updated_at, last_scanned_at; dismissed_at and dismissed_by when the row has them). action is
    what fits: "retry" for a failed link, "retry_now" for one waiting out a backoff, else None.
    `delivery` is the app's delivery state (services/control/delivery_control.describe): a pending
    link of a held app is held, not queued; so is one whose repository's git circuit is open
    (`circuit`: repository_circuit.describe)."""
    now = now or datetime.now(timezone.utc)
    status, tries = link["status"], link["retry_count"]
    due = link.get("next_attempt_at")
    if status == "pending_snapshot" and delivery and delivery["held"]:
        return _state("held", _held_text(delivery), None)
    if status == "pending_snapshot" and circuit and circuit["circuit_open"]:
        until_at = circuit["open_until"]
        return _state("held", f"Held — git failed {circuit['consecutive_failures']} times in a "
                              f"row for this repository; its circuit is open until "
                              f"{clock(until_at)} ({until(until_at, now)}), when it is tried "
                              f"again", None)
    if status == "failed" and link.get("dismissed_at") is not None:
        # Still `failed` (Docora's status), but out of the failed list and of every bulk
        # retry: said so where the link is listed, so that its Failed badges count what
        # "Retry failed" acts on. A single Retry still works (and ends the dismissal).
        return _state("dismissed", f"Dismissed by {link.get('dismissed_by') or 'an operator'} "
                                   f"at {clock(link['dismissed_at'])} — failed after {tries} "
                                   f"attempt{'s' if tries != 1 else ''}; bulk retries skip it",
                      "retry")
    if status == "failed":
        if tries >= max_attempts:
            text = f"Failed — gave up after {tries} of {max_attempts} attempts"
        else:
            text = f"Failed after {tries} attempt{'s' if tries != 1 else ''}"
        return _state("failed", text, "retry")
    if status == "synced":
        when = link.get("last_scanned_at") or link["updated_at"]
        return _state("delivered", f"Delivered at {clock(when)}", None)
    if status == "scanning":
        return _state("delivering", f"Delivering now — attempt {tries + 1} of {max_attempts}, "
                                    f"started {clock(link['updated_at'])}", None)
    if status == "pending_snapshot" and tries > 0:
        failed = f"Retrying — attempt {tries} of {max_attempts} failed"
        if due is not None and due > now:
            return _state("retrying", f"{failed}, next attempt at {clock(due)} "
                                      f"({until(due, now)})", "retry_now")
        return _state("retrying", f"{failed}; attempt {tries + 1} is queued", None)
    if status == "pending_snapshot":
        return _state("queued", "Queued — waiting for a worker", None)
    return _state(status, status.replace("_", " ").capitalize(), None)


def _held_text(delivery):
    if delivery["paused"]:
        return "Held — deliveries to this app are paused; nothing is attempted until resumed"
    if delivery["circuit"] == "open":
        probe = delivery["next_probe_at"]
        return ("Held — the app's circuit is open after repeated failures; "
                + (f"a probe attempt goes out at {clock(probe)}" if probe
                   else "a probe attempt goes out shortly"))
    return f"Held — the app asked to wait until {clock(delivery['deferred_until'])}"


def _state(state, text, action):
    return {"state": state, "label": LABELS.get(state, state), "text": text, "action": action}
