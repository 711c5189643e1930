"""The pieces a flow is made of: states, a transition table, and one ``Step`` per state.

A flow module declares its states (a ``StrEnum``), its table (``[trigger, source, dest]`` rows that
read top to bottom) and a :class:`Step` for each state: what the state shows and what it does with
an answer. A step's ``answer`` validates and prepares; it returns the trigger to fire, or a final
``Screen`` when the journey ends. Money moves only in an ``answer`` that ends the journey, through
an idempotent service call keyed by the turn (:meth:`Ctx.turn_key`), before the session is written:
transitions does not roll back, and a replayed turn must find the same result.

What a journey's steps collect is the flow's own :class:`Journey` (named fields, validated when the
session is loaded), read and written as ``ctx.data(Order).msisdn``. A flow names the journey each of
its menu's triggers starts (``JOURNEYS = {T.AIRTIME: Topup}``): moving from the menu gives the
session that journey's fresh data, so nothing is left over from another journey.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from transitions import Machine

from core.context import Core
from core.conversation.channel import Channel, Shows
from core.conversation.sessions import Journey, Session
from core.conversation.types import Expects, Option, Screen, Turn
from core.errors import AirGateError
from core.i18n import t
from core.jobs.queue import JobQueue

MENU = "menu"  # every role's main menu, the state a journey starts from
LINK = "link"  # the flow of an account nobody linked yet (beside the flows of party roles)
AGAIN = "again"  # an answer's result: start over as whoever is talking now (a link just made)

J = TypeVar("J", bound=Journey)


class Zero(StrEnum):
    """What ``0`` means on a step (``00`` is always the main menu)."""

    BACK = "back"  # the previous step
    CANCEL = "cancel"  # a confirmation: the journey ends, nothing done


class T(StrEnum):
    """Triggers. A menu's option values are its triggers; steps of a journey fire ``next``."""

    NEXT = "next"
    REPEAT = "repeat"  # the same top-up was just made: confirm it twice
    RETRY = "retry"  # back to an earlier step of the journey, saying why
    AIRTIME = "airtime"
    DATA = "data"
    BALANCE = "balance"
    BUY = "buy"
    STATEMENT = "statement"
    SUPPORT = "support"
    ACCOUNT = "account"
    PIN = "pin"
    LANGUAGE = "language"
    SELL = "sell"
    LOW_STOCK = "low_stock"
    RETAILERS = "retailers"
    TODAY = "today"
    UNLOCK = "unlock"
    INVITE = "invite"
    BROADCAST = "broadcast"
    TAG = "tag"
    CASES = "cases"  # a distributor's support queue
    NOTE = "note"  # a step that asks for a free-text note (closing a case)
    DEPOSIT = "deposit"
    REQUESTS = "requests"
    APPROVE = "approve"
    REFUSE = "refuse"
    EXPORT = "export"  # a statement as a document (a command's entry, not on a menu)
    API_KEYS = "apikeys"  # a distributor's keys for the REST API
    CREATE = "create"
    REVOKE = "revoke"


class Reprompt(AirGateError):
    """The answer cannot be used: show the same step again with ``key``'s text on top."""

    code = "reprompt"
    template = "{key}"


@dataclass(slots=True)
class Ctx:
    """One turn as a step sees it: the session's journey data is the flow's memory."""

    core: Core
    queue: JobQueue
    turn: Turn
    session: Session
    # A line shown above the next screen (why we came back to it, what just happened).
    notice: str = ""
    channel: Channel | None = None  # what the turn's channel declared (None: a bare test)

    def data(self, kind: type[J]) -> J:
        """This journey's data, as the flow that started it declared it (a step shared by several
        journeys asks for the struct they all extend, e.g. ``common.Chosen``). Data of another
        kind raises TypeError: a bug in a table (a step reached from a journey it does not belong
        to), or a resume point whose data does not fit its step (the engine then shows the
        menu)."""
        data = self.session.data
        if not isinstance(data, kind):
            raise TypeError(
                f"{self.session.state} needs {kind.__name__}, not {type(data).__name__}"
            )
        return data

    @property
    def lang(self) -> str:
        return self.session.lang

    @property
    def party_id(self) -> int:
        party = self.session.party
        assert party is not None, "a flow's step runs for a known party"
        return party

    @property
    def role(self) -> str:
        return self.session.role

    def can(self, feature: Shows) -> bool:
        """The turn's channel can show ``feature`` (a document, a contact button)."""
        return self.channel is not None and self.channel.can(feature)

    def t(self, key: str, **fields: object) -> str:
        return t(self.lang, key, **fields)

    def turn_key(self) -> str:
        """The idempotency key of this turn: the same hop replayed makes the same request."""
        journey = f"{self.turn.channel}:{self.turn.session_id}:{self.session.journey}"
        digest = hashlib.blake2b(journey.encode(), digest_size=12).hexdigest()
        return f"{digest}:{self.session.version}"


Show = Callable[[Ctx], Awaitable[Screen]]
Answer = Callable[[Ctx, str], Awaitable["str | Screen"]]


@dataclass(frozen=True, slots=True)
class Step:
    """``answer`` gets the free input, or for a CHOICE screen the chosen option's value."""

    show: Show
    answer: Answer
    expects: Expects = Expects.CHOICE
    zero: Zero = Zero.BACK
    # Offered again when the user redials after a drop. Never a step after a PIN was accepted:
    # what was authorised then must be authorised again.
    resumable: bool = True


MenuItem = tuple[str, str] | tuple[str, str, Shows]


def choices(text_key: str, items: Sequence[MenuItem]) -> Show:
    """A static menu: ``items`` are (value, catalogue key of the label), or with a third element
    a feature the channel must show for the item to be there (appended last: the numbering of
    the others stays the same on every channel). Built once per language and channel kind (the
    catalogues do not change while running): a main menu is shown on every first hop."""
    built: dict[tuple[str, tuple[bool, ...]], Screen] = {}
    needs = [item[2] if len(item) == 3 else None for item in items]

    async def show(ctx: Ctx) -> Screen:
        shown = tuple(need is None or ctx.can(need) for need in needs)
        if (screen := built.get((ctx.lang, shown))) is None:
            options = tuple(
                Option(ctx.t(item[1]), item[0]) for item, ok in zip(items, shown, strict=True) if ok
            )
            screen = built[(ctx.lang, shown)] = Screen(ctx.t(text_key), options)
        return screen

    return show


def prompt(text_key: str, **fields: Callable[[Ctx], object]) -> Show:
    """A free-input screen whose text fills ``fields`` from the context."""

    async def show(ctx: Ctx) -> Screen:
        return Screen(ctx.t(text_key, **{k: f(ctx) for k, f in fields.items()}))

    return show


async def fire(_ctx: Ctx, value: str) -> str:
    """A menu's answer: the chosen option's value is the trigger."""
    return value


def end(text: str) -> Screen:
    return Screen(text, final=True)


@dataclass(frozen=True, slots=True)
class Flow:
    """The states, table and steps of one menu tree (a role's), built into one machine; and the
    data each journey keeps, by the trigger that starts it from the menu (``initial``: the data
    the menu itself starts with, for a flow whose menu is its first question, as linking's)."""

    name: str
    initial: str
    table: Sequence[Sequence[Any]]
    steps: dict[str, Step]
    journeys: Mapping[str, type[Journey]] = field(default_factory=dict)
    machine: Machine = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Plain strings: transitions names an Enum state by its member name, not its value.
        machine = Machine(
            model=None,
            states=[str(state) for state in self.steps],
            transitions=[
                {"trigger": str(trigger), "source": _plain(source), "dest": str(dest)}
                for trigger, source, dest in self.table
            ],
            initial=self.initial,
            auto_transitions=False,
        )
        object.__setattr__(self, "machine", machine)

    def move(self, session: Session, trigger: str) -> None:
        """Fire ``trigger`` with the session as the model.

        ``machine.events[trigger].trigger(model)`` is transitions' own dispatch without
        ``add_model``/``remove_model`` (0.42 ms per turn with this many states, against 0.02 ms):
        the model needs only a ``state`` attribute. A trigger the table does not allow from the
        session's state raises transitions' ``MachineError``: a bug in a step, never user input.
        A trigger that starts a journey from the menu gives it fresh data of its declared kind.
        """
        starts = session.state == self.initial and trigger in self.journeys
        self.machine.events[trigger].trigger(session)
        if starts:
            session.data = self.journeys[trigger]()

    def at_menu(self, session: Session) -> None:
        """Put ``session`` on the menu, with the menu's own fresh data (none but linking's)."""
        session.state, session.history, session.page = self.initial, [], 0
        kind = self.journeys.get(self.initial)
        session.data = None if kind is None else kind()

    def mermaid(self) -> str:
        """The table as a Mermaid state diagram (docs/FLOWS.md is generated from it)."""
        lines = ["stateDiagram-v2", f"    [*] --> {_node(self.initial)}"]
        for trigger, sources, dest in self.table:
            for source in [sources] if isinstance(sources, str) else sources:
                lines.append(f"    {_node(source)} --> {_node(dest)}: {trigger}")
        return "\n".join(lines)


def journeys_of(flows: Iterable[Flow]) -> tuple[type[Journey], ...]:
    """Every kind of data the journeys of ``flows`` keep: what their session store loads."""
    return tuple(dict.fromkeys(kind for flow in flows for kind in flow.journeys.values()))


def _plain(source: str | Sequence[str]) -> str | list[str]:
    return str(source) if isinstance(source, str) else [str(s) for s in source]


def _node(state: str) -> str:
    return state.replace(".", "_")
