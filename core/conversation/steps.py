"""Answering the step a session is on: the same for every flow, so no flow wires it.

Invariant: a step's ``answer`` runs only for an input it can take: ``00`` (the main menu), ``0``
(back, or cancel on a confirmation) and ``98`` (the next page of options) never reach it, nor does a
choice that is not on the list shown (or on a list that changed since: ``Turn.shown``). An answer
it cannot use re-prompts the same screen with the reason on top; a rule that says no ends the
journey saying why (:meth:`Steps.describe`, the one place an error becomes words for a user); one
that says "not now" (TryAgain: out of time before money moved, a queue full) shows the step again.

Who is talking and which session this is (starting, the resume offer, replays, saving) is
core/conversation/engine.py; this module only moves one known session on one input.
"""

from __future__ import annotations

from dataclasses import replace

from core.conversation.flow import AGAIN, MENU, Ctx, Flow, Reprompt, Step, Zero, end
from core.conversation.types import Expects, Nav, Screen, Style
from core.errors import AirGateError, InputError, TryAgain, WrongPin
from core.i18n import DEFAULT_LANGUAGE, catalogue, t
from core.logging import get_logger

log = get_logger(__name__)


class Steps:
    """The steps of every flow (``flows``, by party role and LINK), answered and shown."""

    def __init__(self, flows: dict[str, Flow]) -> None:
        self.flows = flows

    def flow(self, ctx: Ctx) -> Flow:
        return self.flows[ctx.role]

    async def on(self, ctx: Ctx, state: str, text: str, style: Style) -> Screen | None:
        """The screen after ``text`` answers ``state``; None when the step said ``AGAIN`` (the
        journey starts over as whoever is talking now: the engine's to do)."""
        session = ctx.session
        try:
            step = self.flow(ctx).steps[state]
            if text == Nav.MAIN:
                return await self.menu(ctx)
            page = session.page
            if text == Nav.MORE and step.expects == Expects.CHOICE:
                screen = await self.show(ctx, step)
                session.page = min(page + 1, max(style.pages(screen) - 1, 0))
                return replace(screen, page=session.page)
            if text == Nav.BACK:
                return await self._zero(ctx, step, page)
            return await self._answer(ctx, step, text)
        except Reprompt as exc:
            fields = exc.shown_fields()
            return await self._again(ctx, style, ctx.t(fields.pop("key"), **fields))
        # Not now (out of time, a queue full): nothing was done, so the same step again, where
        # the same answer tries once more (a confirmation's PIN; a new turn, a new key).
        except (InputError, WrongPin, TryAgain) as exc:
            return await self._again(ctx, style, self.describe(ctx.lang, exc))
        except AirGateError as exc:  # a rule said no (stock, limit, lock…): say it, end
            return end(self.describe(ctx.lang, exc))

    async def _again(self, ctx: Ctx, style: Style, reason: str) -> Screen:
        """The current screen again with ``reason`` on top; if showing it is refused now (a rule
        changed meanwhile), the refusal ends the journey, as any other."""
        try:
            return above(reason, await self.current(ctx, style))
        except AirGateError as exc:
            return end(self.describe(ctx.lang, exc))

    async def _zero(self, ctx: Ctx, step: Step, page: int) -> Screen:
        if page:
            ctx.session.page = page - 1
            return replace(await self.show(ctx, step), page=page - 1)
        if step.zero == Zero.CANCEL:
            return end(ctx.t("common.cancelled"))
        history = ctx.session.history
        if not history or history[-1] == MENU:  # back to the menu: the journey's data goes
            return await self.menu(ctx)
        ctx.session.state = history.pop()
        ctx.session.page = 0
        return await self.show(ctx, self.flow(ctx).steps[ctx.session.state])

    async def _answer(self, ctx: Ctx, step: Step, text: str) -> Screen | None:
        value = text
        if step.expects == Expects.CHOICE:
            screen = await self.show(ctx, step)
            if ctx.turn.shown is not None and ctx.turn.shown != screen.tag():
                raise Reprompt(key="error.stale")  # an old button: the list has changed since
            index = int(text) - 1 if text.isascii() and text.isdigit() and len(text) < 4 else -1
            if not 0 <= index < len(screen.options):
                raise Reprompt(key="error.choose")
            value = screen.options[index].value
        result = await step.answer(ctx, value)
        if isinstance(result, Screen):
            return result
        if result == AGAIN:
            return None
        state, flow = ctx.session.state, self.flow(ctx)
        flow.move(ctx.session, result)
        ctx.session.history.append(state)
        ctx.session.page = 0
        screen = await self.show(ctx, flow.steps[ctx.session.state])
        return above(ctx.notice, screen)

    async def menu(self, ctx: Ctx) -> Screen:
        flow = self.flow(ctx)
        flow.at_menu(ctx.session)
        return await self.show(ctx, flow.steps[MENU])

    async def current(self, ctx: Ctx, style: Style) -> Screen:
        """The screen of the step the session is on, at its page."""
        screen = await self.show(ctx, self.flow(ctx).steps[ctx.session.state])
        return replace(screen, page=min(ctx.session.page, style.pages(screen) - 1))

    async def show(self, ctx: Ctx, step: Step) -> Screen:
        screen = await step.show(ctx)
        if screen.final:
            return screen
        nav = step.zero == Zero.BACK and ctx.session.state != MENU
        if screen.expects == step.expects and screen.nav == nav:
            return screen
        return replace(screen, expects=step.expects, nav=nav)

    @staticmethod
    def describe(lang: str, exc: AirGateError) -> str:
        """The one place an error becomes words for a user, in their language."""
        key = f"error.{exc.code}"
        if key not in catalogue(DEFAULT_LANGUAGE):
            log.warning("no text for an error", code=exc.code, error=type(exc).__name__)
            key = "error.unexpected"
        return t(lang, key, **exc.shown_fields())


def above(line: str, screen: Screen) -> Screen:
    """``screen`` with ``line`` (a reason, a notice) on top; as it is without one."""
    return replace(screen, text=f"{line}\n{screen.text}") if line else screen
