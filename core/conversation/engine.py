"""``Engine.handle(turn) -> Screen``: the one conversation engine every channel calls.

Invariant: a turn applies only if the session it read is still the stored one (compare-and-set,
core/conversation/sessions.py). A turn that loses, or a gateway's retry of a hop already answered,
gets the winner's current screen again and changes nothing.

Here: which session a turn is, and who is talking. Starting (who is calling, as the channel
identifies a party; a stranger offered the link flow; a command's entry), an expired session
saying so and starting over, the offer to continue a journey dropped less than 2 minutes ago
(never past a PIN: see ``Step.resumable``), a gateway's retry answered with the current screen,
and the one write per turn (the session and the resume point). Answering the step a session is on
(``00``, ``0``, ``98``, choices, re-prompts, moves) is core/conversation/steps.py, the same for
every flow.

A hop's hot path stays one Redis read and one Redis write (a first hop's resume point is asked in
flight while the database is asked who is calling), and no task.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import replace

from core import deadline
from core.context import Core
from core.conversation.channel import Channel, Identifies, Shows, by_name
from core.conversation.flow import LINK, MENU, Ctx, Flow, Step, end
from core.conversation.sessions import (
    PathKeeper,
    Resume,
    ResumePoint,
    Session,
    SessionConflict,
    SessionStore,
)
from core.conversation.steps import Steps, above
from core.conversation.types import PLAIN, Expects, Option, Screen, Style, Turn
from core.errors import AirGateError, StoreUnavailable
from core.i18n import DEFAULT_LANGUAGE, t
from core.jobs.queue import JobQueue
from core.logging import get_logger
from core.models import PartyStatus
from core.services import parties

__all__ = ["PLAIN", "Engine", "Style"]  # Style: what a channel's adapter passes to handle()

RESUME, END = "resume", "end"
CONTINUE, OVER = "1", "2"  # the resume offer's answers

log = get_logger(__name__)
# A refusal's language is worth this much of a wait, no more: it answers a hop out of time too.
FAREWELL_LOOKUP_S = 0.25


class Engine:
    def __init__(
        self,
        *,
        core: Core,
        store: SessionStore,
        queue: JobQueue,
        flows: dict[str, Flow],
        channels: Iterable[Channel],
    ) -> None:
        self.core = core
        self.store = store
        self.queue = queue
        self.flows = flows  # by party role, and LINK for an account nobody linked yet
        self.steps = Steps(flows)
        self.channels = by_name(channels)  # a turn of a channel not declared here is a bug
        self.paths = PathKeeper(core.pins.subkey("ussd-path"))

    async def handle(self, turn: Turn, style: Style = PLAIN) -> Screen:
        # A USSD session id is new on each dial; a chat (Telegram) keeps its id across journeys,
        # so its new journey writes over the stored version.
        fresh = turn.is_new and not self.channels[turn.channel].restart_after_end
        session = None if fresh else await self._load(turn)
        # Whatever answers this turn, a PIN typed into a chat does not stay there.
        erase = session is not None and self._expects_pin(session)
        screen = await self._turn(turn, session, style)
        return replace(screen, erase_input=True) if erase else screen

    async def _load(self, turn: Turn) -> Session | None:
        """This user's session under the turn's id. Another user's under the same id (a gateway
        reusing ids, a forged call) is under a key of its own (the key names the user), so it is
        never seen here: this user gets a session of their own."""
        return await self.store.load(turn.channel, turn.session_id, turn.user_ref)

    async def _turn(self, turn: Turn, session: Session | None, style: Style) -> Screen:
        channel = self.channels[turn.channel]
        restart = turn.is_new or (session is not None and session.state == END)
        if session is not None and channel.identifies == Identifies.ACCOUNT and not restart:
            restart = not await self._still_acting(turn, session)
        if session is None or (restart and channel.restart_after_end):
            expired = session is None and not turn.is_new
            session = Session(state=MENU, version=session.version if session else 0)
            screen = await self._start(turn, session, style, expired=expired)
        else:
            answered = await self._replayed(turn, session, style)
            if answered is not None:
                return answered
            screen = await self._apply(self._ctx(turn, session), style)
        try:
            await self._save(turn, session, screen)
        except SessionConflict:
            log.info("turn lost to a concurrent one", channel=turn.channel)
            if screen.final:
                # This turn may have moved money (keyed by the turn, so a concurrent copy found
                # the same result): its own receipt is the truth, not the winner's screen.
                return screen
            stored = await self._load(turn)
            if stored is None:
                return end(t(DEFAULT_LANGUAGE, "start.expired"))
            return await self._current(self._ctx(turn, stored), style)
        except StoreUnavailable as exc:
            if not screen.final:
                raise  # nothing was kept of this turn: the user is told to try again
            # A last screen may be a receipt: money moved, keyed by this turn (a retry of the hop
            # finds the same top-up). It is the answer whether or not the ended session could be
            # written; unwritten, the session and its resume point only expire. "Try again"
            # here would make the user pay twice.
            log.warning("last screen not saved", channel=turn.channel, store=exc.fields["store"])
        return screen

    async def farewell(self, *, channel: str, user_ref: str | None, key: str) -> Screen:
        """A final screen saying ``key`` in the caller's language (English when not known, or
        when the database cannot say): for a request refused before it became a turn."""
        lang = DEFAULT_LANGUAGE
        try:
            async with deadline.bounded(FAREWELL_LOOKUP_S):  # SQLite's lock waits too
                party = None if user_ref is None else await self._who(channel, user_ref)
        except Exception as exc:  # the refusal must answer even with the database away
            log.warning("no language for a refusal", error=type(exc).__name__)
            party = None
        if party is not None:
            lang = party.language
        return end(t(lang, key))

    async def _who(self, channel: str, user_ref: str) -> parties.Who | None:
        """Who is calling, as the channel's declaration says a party is known on it: by its
        own number, or by an account linked to it."""
        by_number = self.channels[channel].identifies == Identifies.NUMBER
        return await parties.who(
            self.core, user_ref=user_ref, channel=None if by_number else channel
        )

    async def _still_acting(self, turn: Turn, session: Session) -> bool:
        """The session's party is still the one this user acts for, active and unlocked (or,
        in the link flow, the account is still linked to nobody)."""
        linking = session.role == LINK
        if session.party is None and not linking:
            return session.state in (END, RESUME)
        party = await self._who(turn.channel, turn.user_ref)
        if linking:
            return party is None
        return (
            party is not None
            and party.id == session.party
            and party.status == PartyStatus.ACTIVE
            and not party.pin_locked
        )

    def _expects_pin(self, session: Session) -> bool:
        flow = self.flows.get(session.role)
        step = flow.steps.get(session.state) if flow else None
        return step is not None and step.expects == Expects.PIN

    def _ctx(self, turn: Turn, session: Session) -> Ctx:
        channel = self.channels[turn.channel]
        return Ctx(core=self.core, queue=self.queue, turn=turn, session=session, channel=channel)

    # -- starting -------------------------------------------------------------------------------

    async def _start(self, turn: Turn, session: Session, style: Style, *, expired: bool) -> Screen:
        if style.last_input is not None:
            session.path = self.paths.keep(turn.input)
        if turn.hop is not None:
            session.hop = turn.hop
        # Where they left off is asked of Redis before who is calling is asked of the database,
        # and read after: one wait for both, without a task (a hop of a session we lost starts
        # over, without the offer).
        resume = None if expired else self.store.resume_point(turn.channel, turn.user_ref)
        party = await self._who(turn.channel, turn.user_ref)
        point = None if resume is None else await resume
        if party is None:
            return await self._stranger(turn, session, style)
        lang = party.language
        if party.role not in self.flows:
            return end(t(lang, "start.not_here"))
        if party.status != PartyStatus.ACTIVE:
            return end(t(lang, "start.inactive", status=t(lang, f"status.{party.status}")))
        if party.pin_locked:
            unlocker = await parties.unlocker_of(self.core, party)
            return end(t(lang, "error.pin_locked", unlocker=unlocker))
        # The journey's own key part, for idempotency keys: a chat's session id is reused, and
        # its versions start again after an expiry, so (chat, version) alone would repeat.
        session.party, session.role, session.lang = party.id, party.role, lang
        session.journey = secrets.token_hex(4)
        ctx = self._ctx(turn, session)
        if turn.entry is not None:
            return await self._enter(ctx, turn.entry, style)
        if point is not None and point.party == party.id:
            offer = self._offer(ctx, point)
            if offer is not None:
                return offer
        screen = await self.steps.show(ctx, self.flows[party.role].steps[MENU])
        return above(ctx.t("start.expired"), screen) if expired else screen

    async def _enter(self, ctx: Ctx, entry: str, style: Style) -> Screen:
        """A command's menu entry, its first step answered by the turn's input; the menu if the
        role's flow has no such entry."""
        flow = self.steps.flow(ctx)
        if entry not in flow.machine.get_triggers(MENU):
            return await self.steps.show(ctx, flow.steps[MENU])
        flow.move(ctx.session, entry)
        ctx.session.history = [MENU]
        return await self._on(ctx, ctx.session.state, ctx.turn.input.strip(), style)

    async def _stranger(self, turn: Turn, session: Session, style: Style) -> Screen:
        """Someone the channel cannot name as a party: on a channel of accounts, an account
        nobody linked yet, offered the link flow (which a shared contact answers at once);
        on a channel of numbers, a number nobody registered."""
        channel = self.channels[turn.channel]
        if channel.identifies == Identifies.NUMBER:
            return end(t(DEFAULT_LANGUAGE, "start.unregistered"))
        if LINK not in self.flows or not channel.can(Shows.CONTACT):
            return end(t(DEFAULT_LANGUAGE, "start.unlinked"))
        session.role, session.lang, session.journey = LINK, DEFAULT_LANGUAGE, secrets.token_hex(4)
        self.flows[LINK].at_menu(session)
        ctx = self._ctx(turn, session)
        if turn.contact is not None:  # a contact shared at once: the first step's answer
            return await self._on(ctx, MENU, turn.input, style)
        return await self.steps.show(ctx, self.flows[LINK].steps[MENU])

    async def _again_as_whoever(self, ctx: Ctx, style: Style) -> Screen:
        """A step's ``AGAIN``: the journey starts over as whoever is talking now (an account
        just linked gets its party's menu), with the step's notice above."""
        notice, session = ctx.notice, ctx.session
        session.state, session.data, session.history, session.page = MENU, None, [], 0
        session.party, session.role = None, ""
        screen = await self._start(ctx.turn, session, style, expired=False)
        return replace(screen, text=f"{notice}\n\n{screen.text}") if notice else screen

    def _offer(self, ctx: Ctx, point: ResumePoint) -> Screen | None:
        """The offer to continue at ``point``; None when it cannot be shown (a label or a step
        this release lacks, a point of an older one): the caller shows the menu instead, whose
        save drops the point, so one bad point cannot fail every dial for two minutes."""
        state = point.state
        try:
            self.steps.flow(ctx).steps[state]  # the step must exist to be continued
            what = ctx.t(f"menu.{state.split('.')[0]}")
            screen = Screen(
                ctx.t("start.resume", what=what),
                (Option(ctx.t("start.continue"), CONTINUE), Option(ctx.t("start.over"), OVER)),
            )
        except Exception as exc:  # whatever it is, the point goes, the dial answers
            log.warning("resume point dropped", state=state, error=type(exc).__name__)
            return None
        ctx.session.state = RESUME
        ctx.session.offered = point
        return screen

    async def _resume(self, ctx: Ctx, text: str) -> Screen:
        """The answer to the resume offer: the step it was on, with what it had collected."""
        session = ctx.session
        point = session.offered
        if text not in (CONTINUE, OVER):
            return above(ctx.t("error.choose"), await self._current(ctx, PLAIN))
        session.offered = None
        if text == OVER or point is None:
            return await self.steps.menu(ctx)
        state = point.state
        session.data, session.state, session.history = point.data, state, [MENU]
        try:
            return await self.steps.current(ctx, PLAIN)
        except AirGateError as exc:  # a rule says no now: said and ended as on any step
            return end(self.describe(ctx.lang, exc))
        except Exception as exc:  # the kept data no longer fits the step
            log.warning("resume point dropped", state=state, error=type(exc).__name__)
            return await self.steps.menu(ctx)

    # -- a turn ---------------------------------------------------------------------------------

    async def _replayed(self, turn: Turn, session: Session, style: Style) -> Screen | None:
        """The answer to a hop already answered (a gateway retry), or None for a new hop."""
        if session.state == END:
            return end(session.ended)
        if style.last_input is not None and self.paths.keep(turn.input) == session.path:
            return await self._current(self._ctx(turn, session), style)
        if turn.hop is not None and turn.hop <= session.hop:
            return await self._current(self._ctx(turn, session), style)
        return None

    async def _apply(self, ctx: Ctx, style: Style) -> Screen:
        session = ctx.session
        raw = ctx.turn.input
        if style.last_input is not None:
            previous = self.paths.seen(session.path)
            raw, session.path = style.last_input(raw, previous), self.paths.keep(raw)
        if ctx.turn.hop is not None:
            session.hop = ctx.turn.hop
        text = raw.strip()
        state = ctx.session.state
        return await self._on(ctx, state, text, style)

    async def _on(self, ctx: Ctx, state: str, text: str, style: Style) -> Screen:
        if state == RESUME:
            return await self._resume(ctx, text)
        screen = await self.steps.on(ctx, state, text, style)
        return screen if screen is not None else await self._again_as_whoever(ctx, style)

    async def _current(self, ctx: Ctx, style: Style) -> Screen:
        """The screen the session is on: its final one, the resume offer, or a flow's step."""
        state = ctx.session.state
        if state == END:
            return end(ctx.session.ended)
        if state == RESUME:
            point = ctx.session.offered
            offer = None if point is None else self._offer(ctx, point)
            return offer if offer is not None else await self.steps.menu(ctx)
        return await self.steps.current(ctx, style)

    # -- saving ---------------------------------------------------------------------------------

    async def _save(self, turn: Turn, session: Session, screen: Screen) -> None:
        """Write the session (a final screen ends it, kept briefly so a retry replays it) and,
        in the same round trip, the user's resume point."""
        resume: Resume | None = None
        if screen.final:
            resume = Resume(None) if session.party is not None else None
            session = _ended(session, screen.text)
        elif session.state == MENU:
            resume = Resume(None)
        elif session.state != RESUME and self._flow_step(session).resumable:
            assert session.party is not None  # a flow's step: the party is known
            point = ResumePoint(session.state, session.party, session.data)
            resume = Resume(point)
        await self.store.save(
            turn.channel, turn.session_id, session, user_ref=turn.user_ref, resume=resume
        )

    def _flow_step(self, session: Session) -> Step:
        return self.flows[session.role].steps[session.state]

    describe = staticmethod(Steps.describe)  # the channels' way to word an error too


def _ended(session: Session, text: str) -> Session:
    """What an ended session keeps, briefly: its final text for a retry, and what tells a retry
    (the path or hop it answered)."""
    return Session(
        END,
        version=session.version,
        path=session.path,
        hop=session.hop,
        ended=text,
    )
