"""APScheduler wiring: fire on DIGEST_SCHEDULE, catch up after downtime, stop cleanly.

APScheduler is only the trigger; the store is the truth. Every fire asks which due date
the schedule last reached and makes that date's edition, which the store keys by date,
so a double fire, a daylight-saving repeat or a second process never makes two.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest.clock import Clock, utc_now
from digest.config import Settings
from digest.errors import DigestError
from digest.locks import LockHeld, scheduler_lock
from digest.models import SendReport
from digest.send import drain
from digest.store import Store
from digest.store.db import describe

if TYPE_CHECKING:
    # Imported where a run is made: `digest status` asks only when the schedule fires,
    # and must not load the selector (numpy) to know.
    from digest import pipeline

logger = logging.getLogger(__name__)

# How often the scheduler looks for a due date the cron job did not reach, which happens
# when the clock jumps (a suspended machine, a corrected clock).
WATCH_INTERVAL = timedelta(seconds=60)


class SafeCronTrigger(CronTrigger):  # type: ignore[misc]
    """A CronTrigger that always moves forward.

    When the clock falls back, APScheduler 3.x returns the repeated hour's second fire time
    again for an hour after it, a time already past; its scheduler would then loop on it.
    Probing a little later finds the real next fire time.
    """

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """Return the next fire time after previous_fire_time and not before now."""
        # Compared in UTC: datetimes sharing a zone compare by wall time, blind to the fold.
        fire: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        now_utc = now.astimezone(UTC)
        previous = previous_fire_time.astimezone(UTC) if previous_fire_time else None
        probe = now_utc if previous is None else max(now_utc, previous)
        for _ in range(16):
            fire_utc = fire.astimezone(UTC) if fire is not None else None
            stuck = fire_utc is not None and (
                fire_utc < now_utc or (previous is not None and fire_utc <= previous)
            )
            if not stuck:
                break
            probe += timedelta(minutes=15)
            fire = super().get_next_fire_time(None, probe)
        return fire


def make_trigger(settings: Settings) -> CronTrigger:
    """Return the cron trigger of DIGEST_SCHEDULE in DIGEST_TIMEZONE."""
    return SafeCronTrigger.from_crontab(settings.schedule, timezone=settings.zone)


def fire_times(trigger: CronTrigger, start: datetime, end: datetime) -> list[datetime]:
    """Return the trigger's fire times after start and up to end, in UTC."""
    fires: list[datetime] = []
    previous: datetime | None = None
    current = start.astimezone(UTC) + timedelta(microseconds=1)
    end = end.astimezone(UTC)
    while True:
        fire = trigger.get_next_fire_time(previous, current)
        if fire is None or fire.astimezone(UTC) > end:
            return fires
        fire = fire.astimezone(UTC)
        fires.append(fire)
        previous, current = fire, fire + timedelta(microseconds=1)


def last_fire(trigger: CronTrigger, now: datetime, lookback: timedelta) -> datetime | None:
    """Return the latest fire time at or before now, looking back at most lookback."""
    fires = fire_times(trigger, now - lookback, now)
    return fires[-1] if fires else None


def next_fire(settings: Settings, now: datetime) -> datetime | None:
    """Return when the schedule fires next after now."""
    fire: datetime | None = make_trigger(settings).get_next_fire_time(None, now)
    return fire.astimezone(settings.zone) if fire else None


@dataclass(frozen=True)
class TickResult:
    """What one look at the schedule did."""

    due: date | None
    # "made", "sent" (an edition made before), "nothing", "skipped", "failed" or "idle"
    action: str
    detail: str = ""
    result: pipeline.RunResult | None = None
    # What sending the editions with due rows did, on a tick that made nothing.
    drained: tuple[SendReport, ...] = ()


class DailyScheduler:
    """Decide, at any moment, whether a due date's edition should be made or sent now."""

    def __init__(
        self, settings: Settings, clock: Clock = utc_now, stop: threading.Event | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock
        # Set by SIGTERM or Ctrl-C: a send in progress finishes its messages in flight.
        self.stop = stop or threading.Event()
        self.trigger = make_trigger(settings)
        # Far enough back to see the last fire of a daily or weekly schedule.
        self.lookback = max(timedelta(days=8), settings.catchup + timedelta(days=1))
        self.attempted: set[date] = set()
        # Local delivery time: the (due date, zone) pairs already served, and the triggers.
        self.served: set[tuple[date, str]] = set()
        self._triggers: dict[str, CronTrigger] = {settings.timezone: self.trigger}
        self._lock = threading.Lock()

    def tick(self, now: datetime | None = None) -> TickResult:
        """Make (and send) the edition of the latest due date if not attempted yet; send
        what is due in the ledger on every tick, so a failed or deferred send is resumed."""
        clock = self.clock if now is None else _frozen(now.astimezone(UTC))
        now = clock().astimezone(UTC)
        with self._lock:
            result = (
                self._local(now, clock) if self.settings.local_time else self._daily(now, clock)
            )
            if result.action in ("made", "sent", "failed") or self.settings.delivery != "smtp":
                return result
            try:
                with Store(self.settings.db) as store:
                    drained = drain(self.settings, store, stop=self.stop, clock=clock)
            except DigestError as err:
                logger.warning("sending what is due failed; the next tick tries again: %s", err)
                return replace(result, action="failed", detail=str(err))
            for report in drained:
                log_send(report)
            return replace(result, drained=tuple(drained))

    def _daily(self, now: datetime, clock: Clock) -> TickResult:
        fire = last_fire(self.trigger, now, self.lookback)
        if fire is None:
            return TickResult(None, "idle", "no due date yet")
        due = fire.astimezone(self.settings.zone).date()
        if due in self.attempted:
            return TickResult(due, "idle", "already attempted")
        self.attempted.add(due)
        return self._run(fire, due, now, clock)

    def _run(
        self,
        fire: datetime,
        due: date,
        now: datetime,
        clock: Clock,
        zones: frozenset[str] | None = None,
    ) -> TickResult:
        late = now - fire
        if late > self.settings.catchup:
            with Store(self.settings.db) as store:
                made = store.editions.for_due_date(due)
            if made is not None:
                return TickResult(
                    due, "nothing", f"the edition for {due} is already made ({made.id})"
                )
            logger.warning(
                "skipped the edition due %s at %s: missed by %s, more than DIGEST_CATCHUP=%s;"
                " it is not sent late",
                due,
                fire.isoformat(),
                _short(late),
                _short(self.settings.catchup),
            )
            return TickResult(due, "skipped", f"missed by {_short(late)}")
        from digest import pipeline

        started = time.monotonic()
        try:
            result = pipeline.run_edition(
                self.settings, now, due_date=due, stop=self.stop, zones=zones, clock=clock
            )
        except DigestError as err:
            if self._made(due) is None:
                # Nothing was made: the next tick makes it, within DIGEST_CATCHUP.
                self.attempted.discard(due)
                for zone in zones or ():
                    self.served.discard((due, zone))
            logger.warning("the run for %s failed; the next tick tries again: %s", due, err)
            return TickResult(due, "failed", str(err))
        log_run(due, result, time.monotonic() - started)
        if result.edition is not None:
            return TickResult(due, "made", result.edition.id, result)
        if result.existing is not None and result.delivery is not None:
            return TickResult(due, "sent", result.existing, result)
        return TickResult(due, "nothing", result.reason, result)

    def _made(self, due: date) -> str | None:
        """Return the id of the edition made for due, if the store can say."""
        try:
            with Store(self.settings.db, readonly=True) as store:
                made = store.editions.for_due_date(due)
        except DigestError:
            return None
        return made.id if made is not None else None

    def _zone_trigger(self, zone: str) -> CronTrigger:
        trigger = self._triggers.get(zone)
        if trigger is None:
            trigger = SafeCronTrigger.from_crontab(self.settings.schedule, timezone=ZoneInfo(zone))
            self._triggers[zone] = trigger
        return trigger

    def _local(self, now: datetime, clock: Clock) -> TickResult:
        """Serve each subscriber zone at the scheduled hour of its own clock.

        One edition per due date is shared by every zone: the first zone to reach its hour
        makes it, and each later zone is sent the same edition when its own hour comes.
        """
        with Store(self.settings.db) as store:
            zones = store.subscribers.zones(self.settings.timezone) | {self.settings.timezone}
        due_zones: dict[date, tuple[datetime, set[str]]] = {}
        for zone in sorted(zones):
            try:
                trigger = self._zone_trigger(zone)
            except (ZoneInfoNotFoundError, ValueError) as err:
                logger.warning("subscribers with time zone %r are skipped: %s", zone, err)
                continue
            fire = last_fire(trigger, now, self.lookback)
            if fire is None:
                continue
            due = fire.astimezone(ZoneInfo(zone)).date()
            if (due, zone) in self.served:
                continue
            self.served.add((due, zone))
            if now - fire > self.settings.catchup:
                logger.warning(
                    "zone %s: the edition due %s at %s was missed by %s, more than"
                    " DIGEST_CATCHUP=%s; it is not sent late",
                    zone,
                    due,
                    fire.isoformat(),
                    _short(now - fire),
                    _short(self.settings.catchup),
                )
                continue
            first, found = due_zones.get(due, (fire, set()))
            found.add(zone)
            due_zones[due] = (min(first, fire), found)
        outcome = TickResult(None, "idle", "no zone is due")
        for due, (fire, found) in sorted(due_zones.items()):
            if due in self.attempted:
                with Store(self.settings.db) as store:
                    made = store.editions.for_due_date(due)
                if made is None:
                    # The first zone found nothing to send; a later edition for the same
                    # date would carry articles the earlier zones never got.
                    logger.info("no edition for %s: zones %s get none", due, ", ".join(found))
                    continue
            self.attempted.add(due)
            outcome = self._run(fire, due, now, clock, frozenset(found))
        return outcome


def log_run(due: date, result: pipeline.RunResult, took: float) -> None:
    """Log one line per run: what was made and what the send did, with counts and time."""
    edition = result.edition.id if result.edition is not None else result.existing
    items = len(result.edition.items) if result.edition is not None else 0
    if edition is None:
        logger.info("run for %s: no edition: %s (%.1f s)", due, result.reason, took)
        return
    counts = result.delivery.counts if result.delivery is not None else {}
    logger.info(
        "run for %s: edition %s%s, %d items, %d subscribers: %d sent, %d failed,"
        " %d skipped, %d pending (%.1f s)",
        due,
        edition,
        "" if result.edition is not None else " (made earlier)",
        items,
        sum(counts.values()),
        counts.get("sent", 0),
        counts.get("failed", 0) + counts.get("bounced", 0),
        counts.get("skipped", 0),
        counts.get("pending", 0) + counts.get("sending", 0),
        took,
    )


def _frozen(at: datetime) -> Clock:
    """Return a clock that always says at (a tick asked about a given moment)."""
    return lambda: at


def log_send(report: SendReport) -> None:
    """Log one line for the send of an edition made earlier."""
    counts = report.counts
    logger.info(
        "sent edition %s: %d sent, %d deferred now; %d sent, %d pending in all (%.1f s)",
        report.edition_id,
        report.sent_now,
        report.deferred_now,
        counts.get("sent", 0),
        report.remaining,
        report.elapsed,
    )


def _short(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fetch_bounces(settings: Settings, clock: Clock = utc_now) -> int:
    """Read the bounce mailbox once (every DIGEST_BOUNCE_INTERVAL); return the new reports.

    A mailbox that cannot be read is logged and tried again at the next interval.
    """
    from digest.bounces.mailbox import fetch_reports

    try:
        with Store(settings.db) as store:
            result = fetch_reports(settings, store, clock())
    except DigestError as err:
        logger.warning("bounce mailbox not read: %s", err)
        return 0
    new = sum(1 for r in result.reports if r.new)
    if new:
        logger.info("recorded %d delivery reports from %d messages", new, result.messages)
    return new


def send_waiting_notices(settings: Settings, clock: Clock = utc_now) -> int:
    """Send the sign-up emails still queued: one the web process put back after a
    temporary SMTP failure, or queued just before it stopped, would otherwise wait for
    the next sign-up to wake it. Return how many went."""
    from digest.notices import send_notices

    try:
        with Store(settings.db) as store:
            return send_notices(settings, store, clock())
    except DigestError as err:
        logger.warning("sign-up emails not sent: %s", err)
        return 0


def _on_event(event: JobExecutionEvent) -> None:
    if event.code == EVENT_JOB_MISSED:
        # The watch job picks the date up within DIGEST_CATCHUP; say so rather than stay quiet.
        logger.warning("schedule fire at %s was missed", event.scheduled_run_time)
    elif event.exception is not None:
        logger.error("scheduled run failed: %s", event.exception)


def serve(settings: Settings, stop: threading.Event | None = None, clock: Clock = utc_now) -> None:
    """Run the schedule in the foreground until stop is set (SIGTERM and SIGINT set it)."""
    lock = scheduler_lock(settings.db)
    if not lock.acquire(0):
        holder = lock.holder() or {}
        raise LockHeld(
            f"{describe(settings.db)}: a scheduler is already running on this store (process"
            f" {holder.get('pid', '?')} on {holder.get('host', '?')}, since"
            f" {holder.get('since', '?')})",
            hint="stop it first, or point DIGEST_DB at another store",
        )
    stop = stop or threading.Event()
    previous = _install_signals(stop)
    scheduler = BackgroundScheduler(timezone=settings.zone)
    try:
        daily = DailyScheduler(settings, clock, stop)
        daily.tick()  # catch up on a date missed while nothing was running
        grace = int(settings.catchup.total_seconds()) or 1
        scheduler.add_job(
            daily.tick,
            daily.trigger,
            id="edition",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=grace,
        )
        scheduler.add_job(
            daily.tick,
            IntervalTrigger(seconds=WATCH_INTERVAL.total_seconds()),
            id="watch",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
        scheduler.add_job(
            send_waiting_notices,
            IntervalTrigger(seconds=WATCH_INTERVAL.total_seconds()),
            args=(settings, clock),
            id="notices",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
        if settings.bounce_mailbox:
            scheduler.add_job(
                fetch_bounces,
                IntervalTrigger(seconds=settings.bounce_interval.total_seconds()),
                args=(settings, clock),
                id="bounces",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )
        scheduler.add_listener(_on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        scheduler.start()
        logger.warning(
            "scheduler running (%s %s); next edition at %s",
            settings.schedule,
            settings.timezone,
            next_fire(settings, clock()),
        )
        stop.wait()
        logger.warning("stopping: letting the run in progress finish")
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=True)
        _restore_signals(previous)
        lock.release()


_Handler = Callable[[int, FrameType | None], object] | int | None


def _install_signals(stop: threading.Event) -> dict[int, _Handler]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, _Handler] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, handle)
    return previous


def _restore_signals(previous: dict[int, _Handler]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def scheduler_status(settings: Settings) -> dict[str, object] | None:
    """Return who runs the scheduler on this store (pid, host, since), or None."""
    return scheduler_lock(settings.db).holder()
