"""A local fake of the Telegram Bot API (aiohttp) that the real python-telegram-bot runs against.

Point PTB at it with ``base_url=fake.base_url`` (``{url}/bot``) and
``base_file_url=fake.base_file_url`` (``{url}/file/bot``), or take ``fake.bot()`` /
``fake.builder()`` ready-made; core's ``TelegramSender`` takes ``api_url=fake.base_url``.

What it does, as the real API does it:

* ``POST``/``GET /bot{token}/{method}`` with a JSON body, a urlencoded form or multipart (PTB
  sends forms: every value that is not a ``str`` JSON-encoded, files as parts); the method name
  is case-insensitive; answers ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code":
  N, "description": ...}`` with HTTP status N. A wrong token is 401 ``Unauthorized``, an unknown
  method 404 ``Not Found: method not found``.
* Chats keep their live messages; message ids count up per chat, shared by the user's and the
  bot's messages as in a private chat. ``editMessageText`` without ``reply_markup`` drops the
  inline keyboard (as Telegram does); an edit that changes nothing is 400 ``message is not
  modified``; deleting a missing message is 400 ``message to delete not found``.
* ``parse_mode="HTML"`` is parsed the way Telegram does it (tags become ``entities``, the stored
  ``text`` is the plain text, an unsupported or unclosed tag or a bare ``<`` is 400 ``can't parse
  entities``); Markdown is stored as sent, not parsed. Texts over 4096 characters, captions over
  1024 and ``callback_data`` over 64 bytes are refused like Telegram refuses them.
* ``sendPhoto`` takes a PNG or JPEG upload (anything else is 400 ``IMAGE_PROCESS_FAILED``, as
  Telegram answers) and answers with the ``photo`` sizes; the images are kept in ``photos``.
* Flood control on ``sendMessage``/``sendDocument``/``sendPhoto``: at most ``per_chat_per_s``
  accepted sends per chat and ``global_per_s`` overall in any sliding ``window`` (1 s); over that
  a 429 with ``parameters.retry_after``. ``limits=False`` switches it off (accepted sends are
  still timed).
* ``block(chat_id)``: sends and edits to that chat are 403 ``bot was blocked by the user``.
* ``getUpdates`` long-polls (``offset`` confirms, ``timeout`` waits, a second concurrent call
  ends the first with 409, as does polling while a webhook is set).

Tests inject updates built by ``user_message``/``user_command``/``user_contact``/
``user_document``/``callback``/``press`` with ``push`` (for polling) or ``deliver`` (POSTs to
the webhook set with ``setWebhook``, with its secret token header). A conftest takes the fixture
with ``from tests.fakes.telegram_api import fake_telegram  # noqa: F401``. It lives in sandbox/
(stand-ins for the services AirGate talks to) so the tests and bench/ both use it and bench/
imports nothing from tests/.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import math
import mimetypes
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from telegram import Bot

Json = dict[str, Any]
ChatId = int | str

DEFAULT_TOKEN = "123456:TEST-token"
BOT_USERNAME = "airgate_test_bot"
BOT_NAME = "AirGate Test"

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64  # bytes

BLOCKED = "Forbidden: bot was blocked by the user"
KICKED = "Forbidden: bot was kicked from the group chat"
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
    "the webhook first"
)
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is "
    "running"
)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# Form values are JSON-encoded unless they are strings (PTB's RequestParameter.json_value); these
# parameters are strings even when they look like numbers or ``true``.
_STRING_PARAMS = frozenset(
    {
        "text", "caption", "parse_mode", "callback_query_id", "url", "secret_token",
        "inline_message_id", "ip_address", "language_code", "business_connection_id",
        "message_effect_id", "file_id", "document", "thumbnail", "action", "emoji",
        "description", "short_description", "name", "title",
    }
)  # fmt: skip
# ... and these are JSON objects or arrays, which a JSON body may also carry as a string.
_JSON_PARAMS = frozenset(
    {
        "reply_markup", "entities", "caption_entities", "commands", "scope", "allowed_updates",
        "link_preview_options", "reply_parameters",
    }
)  # fmt: skip
_INT = re.compile(r"-?\d+")


class ApiError(Exception):
    """An error answer of the Bot API: ``{"ok": false, "error_code": ..., "description": ...}``."""

    def __init__(self, code: int, description: str, parameters: Json | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> Json:
        body: Json = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad(what: str) -> ApiError:
    return ApiError(400, f"Bad Request: {what}")


@dataclass
class Upload:
    """A file part of a multipart request."""

    filename: str
    content: bytes
    content_type: str


@dataclass
class Call:
    """One request the fake answered (``status`` 0 while it is still running, e.g. a long poll)."""

    method: str
    params: Json
    files: dict[str, Upload]
    at: float  # time.monotonic() on arrival
    status: int = 0
    response: Json = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class Document:
    """A document in a chat: sent by the bot (``sendDocument``) or by a user (``user_document``)."""

    chat_id: ChatId
    message_id: int
    filename: str
    content: bytes
    mime_type: str
    caption: str | None
    file_id: str
    file_unique_id: str
    file_path: str

    def to_api(self) -> Json:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_name": self.filename,
            "mime_type": self.mime_type,
            "file_size": len(self.content),
        }


@dataclass
class Message:
    """A live message in a chat. ``params`` are those of the call that sent it (bot messages)."""

    message_id: int
    chat_id: ChatId
    chat: Json
    sender: Json
    date: int
    from_bot: bool
    text: str | None = None
    entities: list[Json] = field(default_factory=list)
    reply_markup: Json | None = None
    caption: str | None = None
    caption_entities: list[Json] = field(default_factory=list)
    document: Document | None = None
    photo: Document | None = None
    edit_date: int | None = None
    params: Json = field(default_factory=dict)
    payload: Json | None = None  # a user's message: the JSON as it was delivered

    @property
    def buttons(self) -> list[list[Json]]:
        """The rows of the inline keyboard (empty without one)."""
        return list((self.reply_markup or {}).get("inline_keyboard", []))

    @property
    def keyboard(self) -> list[list[Json]]:
        """The rows of a reply keyboard (e.g. a ``request_contact`` button), buttons as dicts."""
        rows = (self.reply_markup or {}).get("keyboard", [])
        return [[b if isinstance(b, dict) else {"text": b} for b in row] for row in rows]

    def button(self, label: str) -> Json:
        """The inline button whose text or ``callback_data`` is ``label``."""
        for row in self.buttons:
            for button in row:
                if label in (button.get("text"), button.get("callback_data")):
                    return dict(button)
        raise LookupError(f"no button {label!r} on message {self.message_id}: {self.buttons}")

    def to_api(self) -> Json:
        if self.payload is not None:
            return dict(self.payload)
        out: Json = {
            "message_id": self.message_id,
            "from": self.sender,
            "chat": self.chat,
            "date": self.date,
        }
        if self.edit_date is not None:
            out["edit_date"] = self.edit_date
        if self.text is not None:
            out["text"] = self.text
        if self.entities:
            out["entities"] = self.entities
        if self.document is not None:
            out["document"] = self.document.to_api()
        if self.photo is not None:
            out["photo"] = [_photo_size(self.photo)]
        if self.caption is not None:
            out["caption"] = self.caption
        if self.caption_entities:
            out["caption_entities"] = self.caption_entities
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            out["reply_markup"] = self.reply_markup  # only inline keyboards come back
        return out


def max_rate(times: Iterable[float], window: float = 1.0) -> int:
    """The most of ``times`` that fall in any half-open window ``(t - window, t]``."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _u16(text: str) -> int:
    """Length in UTF-16 code units, which entity offsets and lengths count."""
    return len(text.encode("utf-16-le")) // 2


def _chat_key(value: Any) -> ChatId:
    if isinstance(value, bool) or value is None:
        raise _bad("chat_id is empty")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text:
        raise _bad("chat_id is empty")
    return int(text) if _INT.fullmatch(text) else text


def _decode_form(params: dict[str, str]) -> Json:
    out: Json = {}
    for key, value in params.items():
        if key in _STRING_PARAMS:
            out[key] = value
            continue
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _decode_json(params: Json) -> Json:
    out = dict(params)
    for key in _JSON_PARAMS & out.keys():
        if isinstance(out[key], str):
            try:
                out[key] = json.loads(out[key])
            except ValueError:
                raise _bad(f"can't parse {key} JSON object") from None
    return out


async def _read_params(request: web.Request) -> tuple[Json, dict[str, Upload]]:
    form: dict[str, str] = dict(request.query)
    files: dict[str, Upload] = {}
    if request.content_type == "application/json" and request.can_read_body:
        body = await request.json()
        if not isinstance(body, dict):
            raise _bad("request body must be a JSON object")
        return _decode_json({**_decode_form(form), **body}), files
    if request.content_type == "multipart/form-data":
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                continue
            if part.filename is not None:
                ctype = part.headers.get("Content-Type", "application/octet-stream")
                files[part.name] = Upload(part.filename, bytes(await part.read()), ctype)
            else:
                form[part.name] = await part.text()
    elif request.can_read_body:
        posted = await request.post()
        form.update({k: v for k, v in posted.items() if isinstance(v, str)})
    return _decode_form(form), files


class _HtmlError(Exception):
    pass


_HTML_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "code": "code", "pre": "pre", "a": "text_link", "tg-spoiler": "spoiler", "span": "spoiler",
    "blockquote": "blockquote", "tg-emoji": "custom_emoji",
}  # fmt: skip
_HTML_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class _Html(HTMLParser):
    """Telegram's HTML parse mode: the plain text and its entities (UTF-16 offsets)."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=False)
        self.source = source
        self.parts: list[str] = []
        self.length = 0
        self.stack: list[tuple[str, str, int, dict[str, str | None]]] = []
        self.entities: list[Json] = []

    def _where(self) -> str:
        line, column = self.getpos()
        lines = self.source.splitlines(keepends=True)
        chars = sum(len(x) for x in lines[: line - 1]) + column
        return f"at byte offset {len(self.source[:chars].encode())}"

    def _add(self, text: str) -> None:
        self.parts.append(text)
        self.length += _u16(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        kind = _HTML_TAGS.get(tag)
        attributes = dict(attrs)
        if tag == "span" and attributes.get("class") != "tg-spoiler":
            kind = None
        if kind is None:
            raise _HtmlError(f'Unsupported start tag "{tag}" {self._where()}')
        self.stack.append((tag, kind, self.length, attributes))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1][0] != tag:
            expected = f'"</{self.stack[-1][0]}>"' if self.stack else "no end tag"
            raise _HtmlError(
                f'Unmatched end tag {self._where()}, expected {expected}, found "</{tag}>"'
            )
        _tag, kind, start, attributes = self.stack.pop()
        if self.length > start:
            entity: Json = {"type": kind, "offset": start, "length": self.length - start}
            if kind == "text_link":
                entity["url"] = attributes.get("href") or ""
            self.entities.append(entity)

    def handle_data(self, data: str) -> None:
        if "<" in data:
            raise _HtmlError(f'Unsupported start tag "" {self._where()}')
        self._add(data)

    def handle_entityref(self, name: str) -> None:
        self._add(_HTML_ENTITIES.get(name, f"&{name}"))

    def handle_charref(self, name: str) -> None:
        code = int(name[1:], 16) if name[:1] in "xX" else int(name)
        self._add(chr(code))

    def result(self) -> tuple[str, list[Json]]:
        self.feed(self.source)
        self.close()
        if self.stack:
            raise _HtmlError(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1][0]}"'
            )
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), self.entities


def _formatted(raw: Any, parse_mode: Any, entities: Any) -> tuple[str, list[Json]]:
    """The text Telegram stores for ``raw`` sent with ``parse_mode`` or explicit ``entities``."""
    text = str(raw)
    if isinstance(entities, list):
        return text, entities
    mode = str(parse_mode or "").lower()
    if mode == "html":
        try:
            return _Html(text).result()
        except _HtmlError as exc:
            raise _bad(f"can't parse entities: {exc}") from None
    if mode not in ("", "markdown", "markdownv2"):
        raise _bad("unsupported parse_mode")
    return text, []  # Markdown is not parsed here


_BUTTON_ACTIONS = (
    "callback_data", "url", "web_app", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
    "callback_game", "pay",
)  # fmt: skip


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not button.get("text"):
        raise _bad("can't parse inline keyboard button: Text must be non-empty")
    if not any(k in button for k in _BUTTON_ACTIONS):
        raise _bad("text buttons are unallowed in the inline keyboard")
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
        raise _bad("BUTTON_DATA_INVALID")


def _markup(params: Json) -> Json | None:
    markup = params.get("reply_markup")
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    for row in markup.get("inline_keyboard", []):
        for button in row:
            _check_inline_button(button)
    return markup


_PNG = b"\x89PNG\r\n\x1a\n"


def _image_size(content: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG (from its IHDR) or (0, 0) for a JPEG; None: not an image."""
    if content.startswith(_PNG) and len(content) >= 24:
        return int.from_bytes(content[16:20]), int.from_bytes(content[20:24])
    if content.startswith(b"\xff\xd8\xff"):
        return 0, 0
    return None


def _photo_size(doc: Document) -> Json:
    width, height = _image_size(doc.content) or (0, 0)
    return {
        "file_id": doc.file_id,
        "file_unique_id": doc.file_unique_id,
        "width": width,
        "height": height,
        "file_size": len(doc.content),
    }


def _update_kind(update: Json) -> str:
    return next((k for k in update if k != "update_id"), "")


Handler = Callable[[Json, dict[str, Upload]], Any]


class FakeTelegram:
    """The fake Bot API server; ``async with FakeTelegram() as fake`` runs it on a free port."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        limits: bool = True,
        per_chat_per_s: int = 1,
        global_per_s: int = 30,
        window: float = 1.0,
        known_chats_only: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        self.token = token
        self.limits = limits
        self.per_chat_per_s = per_chat_per_s
        self.global_per_s = global_per_s
        self.window = window
        # True: sending to a chat no user update has come from is 400 "chat not found".
        self.known_chats_only = known_chats_only
        self.host = host
        self.url = ""
        self.me: Json = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": BOT_NAME,
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.calls: list[Call] = []
        self.documents: list[Document] = []
        self.photos: list[Document] = []  # sendPhoto's images, in the order taken
        self.rate_limited = 0  # 429 answers sent
        self.accepted: dict[ChatId, list[float]] = {}  # per chat: monotonic times of sends taken
        self.accepted_all: list[float] = []
        self.blocked: set[ChatId] = set()
        self.users: dict[int, Json] = {}
        self.webhook: Json = {}
        self.commands: dict[tuple[str, str], list[Json]] = {}
        self.answers: dict[str, Json] = {}  # callback query id -> answerCallbackQuery params
        self.updates: list[Json] = []  # queued, not yet confirmed by a getUpdates offset
        self._chats: dict[ChatId, dict[int, Message]] = {}
        self._last_id: dict[ChatId, int] = {}
        self._known: set[ChatId] = set()
        self._files: dict[str, Document] = {}
        self._file_seq = itertools.count(1)
        self._query_seq = itertools.count(1)
        self._pending_queries: set[str] = set()
        self._last_update_id = 0
        self._poll_generation = 0
        self._changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        handlers: dict[str, Handler] = {
            "getMe": lambda p, f: self.me,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendDocument": self._send_document,
            "sendPhoto": self._send_photo,
            "sendChatAction": self._send_chat_action,
            "getFile": self._get_file,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "getUpdates": self._get_updates,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "close": lambda p, f: True,
            "logOut": lambda p, f: True,
        }
        self._methods = {name.lower(): (name, handler) for name, handler in handlers.items()}

    # -- running -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        # handler_cancellation: a long poll whose client went away stops waiting.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def close(self) -> None:
        self._closing = True
        self._wake()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        try:
            await self.start()
        except BaseException:
            await self.close()  # a runner set up but not started is still cleaned up
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def bot(self, **kwargs: Any) -> Bot:
        """A ``telegram.Bot`` pointed at this server (``async with fake.bot() as bot``)."""
        from telegram import Bot

        return Bot(self.token, base_url=self.base_url, base_file_url=self.base_file_url, **kwargs)

    def builder(self) -> Any:
        """A ``telegram.ext.ApplicationBuilder`` with token and URLs set; add more and build()."""
        from telegram.ext import ApplicationBuilder

        return (
            ApplicationBuilder()
            .token(self.token)
            .base_url(self.base_url)
            .base_file_url(self.base_file_url)
        )

    # -- what tests read -----------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def chat(self, chat_id: ChatId, *, include_user: bool = False) -> list[Message]:
        """The live messages of a chat, oldest first: the bot's (and with ``include_user`` the
        users')."""
        messages = self._chats.get(_chat_key(chat_id), {}).values()
        return sorted(
            (m for m in messages if include_user or m.from_bot), key=lambda m: m.message_id
        )

    def last(self, chat_id: ChatId) -> Message:
        """The bot's newest live message in the chat."""
        messages = self.chat(chat_id)
        if not messages:
            raise LookupError(f"the bot has no message in chat {chat_id}")
        return messages[-1]

    def max_chat_rate(self) -> int:
        """The most sends accepted for one chat within any window."""
        return max((max_rate(t, self.window) for t in self.accepted.values()), default=0)

    def max_global_rate(self) -> int:
        """The most sends accepted overall within any window."""
        return max_rate(self.accepted_all, self.window)

    async def wait_until(self, predicate: Callable[[], Any], within: float = 5.0) -> Any:
        """Wait for ``predicate()`` to be truthy and return it (AssertionError after ``within``
        seconds)."""
        deadline = time.monotonic() + within
        while not (value := predicate()):
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {within} s: {predicate}")
            await asyncio.sleep(0.01)
        return value

    # -- what tests do -------------------------------------------------------------------------

    def block(self, chat_id: ChatId) -> None:
        self.blocked.add(_chat_key(chat_id))

    def unblock(self, chat_id: ChatId) -> None:
        self.blocked.discard(_chat_key(chat_id))

    def user(self, user_id: int, **fields: Any) -> Json:
        """The user's profile as the API shows it; ``fields`` (first_name, last_name, username,
        language_code...) change it."""
        profile = self.users.setdefault(
            user_id,
            {"id": user_id, "is_bot": False, "first_name": f"User{user_id}", "language_code": "en"},
        )
        profile.update({k: v for k, v in fields.items() if v is not None})
        return dict(profile)

    def push(self, update: Json) -> Json:
        """Queue an update for getUpdates (its update_id is raised if an older one was queued)."""
        if update["update_id"] <= self._last_update_id:
            update["update_id"] = self._last_update_id + 1
        self._last_update_id = update["update_id"]
        self.updates.append(update)
        self._wake()
        return update

    async def deliver(self, update: Json) -> int:
        """POST the update to the webhook set with setWebhook; the HTTP status it answered."""
        url = self.webhook.get("url")
        if not url:
            raise RuntimeError("no webhook is set")
        headers = {}
        if self.webhook.get("secret_token"):
            headers[SECRET_HEADER] = str(self.webhook["secret_token"])
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, json=update, headers=headers) as resp,
        ):
            return resp.status

    def user_message(
        self, user_id: int, text: str, chat_id: ChatId | None = None, **fields: Any
    ) -> Json:
        """A text message from the user (in their private chat unless ``chat_id``)."""
        return self._from_user(user_id, chat_id, {"text": text, **fields})

    def user_command(self, user_id: int, command: str, chat_id: ChatId | None = None) -> Json:
        """``"/start CODE"`` with its ``bot_command`` entity."""
        word = command.split(maxsplit=1)[0]
        entity = {"type": "bot_command", "offset": 0, "length": _u16(word)}
        return self._from_user(user_id, chat_id, {"text": command, "entities": [entity]})

    def user_contact(
        self,
        user_id: int,
        phone: str,
        *,
        contact_user_id: int | None = None,
        with_user_id: bool = True,
        first_name: str | None = None,
    ) -> Json:
        """A shared contact, by default the sender's own (as a ``request_contact`` button sends
        it). Real clients often send the number without ``+``. ``contact_user_id`` shares
        someone else's; ``with_user_id=False`` a contact with no Telegram account."""
        contact: Json = {
            "phone_number": phone,
            "first_name": first_name or self.user(user_id)["first_name"],
        }
        if with_user_id:
            contact["user_id"] = user_id if contact_user_id is None else contact_user_id
        return self._from_user(user_id, None, {"contact": contact})

    def user_document(
        self,
        user_id: int,
        filename: str,
        content: bytes,
        *,
        caption: str | None = None,
        mime_type: str | None = None,
    ) -> Json:
        """A document the user sends; the bot can fetch it with getFile and download it."""
        chat = _chat_key(user_id)
        message_id = self._next_message_id(chat)
        doc = self._store_file(chat, message_id, filename, content, mime_type, caption)
        fields: Json = {"document": doc.to_api()}
        if caption is not None:
            fields["caption"] = caption
        return self._from_user(user_id, None, fields, message_id=message_id, document=doc)

    def callback(
        self,
        user_id: int,
        message_id: int,
        data: str,
        chat_id: ChatId | None = None,
        *,
        strict: bool = True,
    ) -> Json:
        """The user pressing a button with ``data`` on the bot's message ``message_id``;
        ``strict=False`` allows data that no button of that message carries."""
        chat = _chat_key(user_id if chat_id is None else chat_id)
        message = self._chats.get(chat, {}).get(message_id)
        if message is None or not message.from_bot:
            raise LookupError(f"the bot has no message {message_id} in chat {chat}")
        if strict:
            message.button(data)
        query_id = f"{user_id}{next(self._query_seq):08d}"
        self._pending_queries.add(query_id)
        query = {
            "id": query_id,
            "from": self.user(user_id),
            "message": message.to_api(),
            "chat_instance": str(abs(hash((self.token, chat))) % 10**18),
            "data": data,
        }
        return {"update_id": self._next_update_id(), "callback_query": query}

    def press(self, user_id: int, label: str, chat_id: ChatId | None = None) -> Json:
        """Press the button with text or callback data ``label`` on the bot's newest message in
        the chat that has one."""
        chat = _chat_key(user_id if chat_id is None else chat_id)
        for message in reversed(self.chat(chat)):
            with contextlib.suppress(LookupError):
                data = message.button(label)["callback_data"]
                return self.callback(user_id, message.message_id, data, chat_id)
        raise LookupError(f"no message in chat {chat} has a button {label!r}")

    # -- internals -----------------------------------------------------------------------------

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _next_update_id(self) -> int:
        self._last_update_id += 1
        return self._last_update_id

    def _next_message_id(self, chat: ChatId) -> int:
        self._last_id[chat] = self._last_id.get(chat, 0) + 1
        return self._last_id[chat]

    def _chat_json(self, chat: ChatId) -> Json:
        if isinstance(chat, int) and chat > 0:
            profile = self.user(chat)
            keys = ("first_name", "last_name", "username")
            return {"id": chat, "type": "private", **{k: profile[k] for k in keys if k in profile}}
        if isinstance(chat, str):
            return {
                "id": -1000000000001,
                "type": "channel",
                "title": chat,
                "username": chat.lstrip("@"),
            }
        kind = "supergroup" if str(chat).startswith("-100") else "group"
        return {"id": chat, "type": kind, "title": f"Group {chat}"}

    def _from_user(
        self,
        user_id: int,
        chat_id: ChatId | None,
        fields: Json,
        *,
        message_id: int | None = None,
        document: Document | None = None,
    ) -> Json:
        chat = _chat_key(user_id if chat_id is None else chat_id)
        message_id = message_id or self._next_message_id(chat)
        payload: Json = {
            "message_id": message_id,
            "from": self.user(user_id),
            "chat": self._chat_json(chat),
            "date": int(time.time()),
            **fields,
        }
        self._chats.setdefault(chat, {})[message_id] = Message(
            message_id=message_id,
            chat_id=chat,
            chat=payload["chat"],
            sender=payload["from"],
            date=payload["date"],
            from_bot=False,
            text=fields.get("text"),
            entities=list(fields.get("entities", [])),
            caption=fields.get("caption"),
            document=document,
            payload=payload,
        )
        self._known.add(chat)
        return {"update_id": self._next_update_id(), "message": payload}

    def _store_file(
        self,
        chat: ChatId,
        message_id: int,
        filename: str,
        content: bytes,
        mime_type: str | None,
        caption: str | None,
    ) -> Document:
        n = next(self._file_seq)
        suffix = "." + filename.rsplit(".", 1)[1] if "." in filename else ""
        doc = Document(
            chat_id=chat,
            message_id=message_id,
            filename=filename,
            content=content,
            mime_type=mime_type or mimetypes.guess_type(filename)[0] or "application/octet-stream",
            caption=caption,
            file_id=f"BQACAgQAAxkBAAI{n:06d}fake",
            file_unique_id=f"AgAD{n:06d}",
            file_path=f"documents/file_{n}{suffix}",
        )
        self._files[doc.file_id] = doc
        return doc

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        method, handler = self._methods.get(name.lower(), (name, None))
        error: ApiError | None = None
        try:
            params, files = await _read_params(request)
        except ApiError as exc:
            params, files, error = {}, {}, exc
        except ValueError:
            params, files, error = {}, {}, _bad("can't parse request body")
        call = Call(method=method, params=params, files=files, at=time.monotonic())
        self.calls.append(call)
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            if error is not None:
                raise error
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            result = handler(params, files)
            if inspect.isawaitable(result):
                result = await result
            call.status, call.response = 200, {"ok": True, "result": result}
        except ApiError as exc:
            call.status, call.response = exc.code, exc.body()
        except (TypeError, ValueError) as exc:  # a parameter of the wrong shape
            call.status, call.response = 400, _bad(f"invalid parameters: {exc}").body()
        return web.json_response(call.response, status=call.status)

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401}, status=401)
        path = request.match_info["path"]
        for doc in self._files.values():
            if doc.file_path == path:
                return web.Response(body=doc.content, content_type=doc.mime_type)
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    def _target(self, params: Json) -> ChatId:
        """The chat a send or edit goes to: known and not blocked."""
        chat = _chat_key(params.get("chat_id"))
        if chat in self.blocked:
            raise ApiError(403, BLOCKED if isinstance(chat, int) and chat > 0 else KICKED)
        if self.known_chats_only and chat not in self._known:
            raise _bad("chat not found")
        return chat

    def _throttle(self, chat: ChatId) -> None:
        now = time.monotonic()
        if self.limits:
            wait = max(
                self._wait(self.accepted.get(chat, []), self.per_chat_per_s, now),
                self._wait(self.accepted_all, self.global_per_s, now),
            )
            if wait > 0:
                self.rate_limited += 1
                after = max(1, math.ceil(wait))
                raise ApiError(
                    429, f"Too Many Requests: retry after {after}", {"retry_after": after}
                )
        self.accepted.setdefault(chat, []).append(now)
        self.accepted_all.append(now)

    def _wait(self, times: list[float], limit: int, now: float) -> float:
        """Seconds until one more send fits in the window (0: it fits now)."""
        recent = [t for t in times if t > now - self.window]
        if len(recent) < limit:
            return 0.0
        return recent[-limit] + self.window - now

    def _bot_message(self, chat: ChatId, params: Json, **fields: Any) -> Message:
        message_id = self._next_message_id(chat)
        message = Message(
            message_id=message_id,
            chat_id=chat,
            chat=self._chat_json(chat),
            sender={k: self.me[k] for k in ("id", "is_bot", "first_name", "username")},
            date=int(time.time()),
            from_bot=True,
            params=params,
            **fields,
        )
        self._chats.setdefault(chat, {})[message_id] = message
        return message

    def _stored(self, params: Json, missing: str) -> Message:
        if params.get("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")  # inline messages are not kept here
        chat = _chat_key(params.get("chat_id"))
        try:
            message_id = int(params.get("message_id") or 0)
        except (TypeError, ValueError):
            raise _bad("message identifier is not specified") from None
        message = self._chats.get(chat, {}).get(message_id)
        if message is None:
            raise _bad(missing)
        return message

    def _editable(self, params: Json) -> Message:
        self._target(params)
        message = self._stored(params, "message to edit not found")
        if not message.from_bot:
            raise _bad("message can't be edited")
        return message

    # -- methods -------------------------------------------------------------------------------

    def _send_message(self, params: Json, files: dict[str, Upload]) -> Json:
        chat = self._target(params)
        raw = params.get("text")
        if raw is None or not str(raw).strip():
            raise _bad("message text is empty")
        text, entities = _formatted(raw, params.get("parse_mode"), params.get("entities"))
        if len(text) > MAX_TEXT:
            raise _bad("message is too long")
        markup = _markup(params)
        self._throttle(chat)
        message = self._bot_message(chat, params, text=text, entities=entities, reply_markup=markup)
        return message.to_api()

    def _edit_message_text(self, params: Json, files: dict[str, Upload]) -> Json:
        message = self._editable(params)
        if message.text is None:
            raise _bad("there is no text in the message to edit")
        raw = params.get("text")
        if raw is None or not str(raw).strip():
            raise _bad("message text is empty")
        text, entities = _formatted(raw, params.get("parse_mode"), params.get("entities"))
        if len(text) > MAX_TEXT:
            raise _bad("message is too long")
        markup = _markup(params)  # absent: the inline keyboard goes
        if (text, entities, markup) == (message.text, message.entities, message.reply_markup):
            raise _bad(NOT_MODIFIED)
        message.text, message.entities, message.reply_markup = text, entities, markup
        message.edit_date = int(time.time())
        return message.to_api()

    def _edit_message_reply_markup(self, params: Json, files: dict[str, Upload]) -> Json:
        message = self._editable(params)
        markup = _markup(params)
        if markup == message.reply_markup:
            raise _bad(NOT_MODIFIED)
        message.reply_markup = markup
        message.edit_date = int(time.time())
        return message.to_api()

    def _delete_message(self, params: Json, files: dict[str, Upload]) -> bool:
        message = self._stored(params, "message to delete not found")
        del self._chats[message.chat_id][message.message_id]
        return True

    def _answer_callback_query(self, params: Json, files: dict[str, Upload]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self._pending_queries:
            raise _bad(QUERY_INVALID)
        self._pending_queries.discard(query_id)
        self.answers[query_id] = params
        return True

    def _document_source(self, params: Json, files: dict[str, Upload]) -> Upload:
        value = params.get("document")
        if isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value.removeprefix("attach://"))
        elif value is None:
            upload = files.get("document")
        elif str(value) in self._files:
            old = self._files[str(value)]
            upload = Upload(old.filename, old.content, old.mime_type)
        else:
            raise _bad("wrong file identifier/HTTP URL specified")
        if upload is None:
            raise _bad("there is no document in the request")
        return upload

    def _send_document(self, params: Json, files: dict[str, Upload]) -> Json:
        chat = self._target(params)
        upload = self._document_source(params, files)
        caption: str | None = None
        caption_entities: list[Json] = []
        if params.get("caption") is not None:
            caption, caption_entities = _formatted(
                params["caption"], params.get("parse_mode"), params.get("caption_entities")
            )
            if len(caption) > MAX_CAPTION:
                raise _bad("message caption is too long")
        markup = _markup(params)
        self._throttle(chat)
        message = self._bot_message(
            chat, params, caption=caption, caption_entities=caption_entities, reply_markup=markup
        )
        doc = self._store_file(
            chat, message.message_id, upload.filename, upload.content, upload.content_type,
            caption,
        )  # fmt: skip
        message.document = doc
        self.documents.append(doc)
        return message.to_api()

    def _send_photo(self, params: Json, files: dict[str, Upload]) -> Json:
        chat = self._target(params)
        value = params.get("photo")
        name = value.removeprefix("attach://") if isinstance(value, str) else "photo"
        upload = files.get(name)
        if upload is None:
            raise _bad("there is no photo in the request")
        if _image_size(upload.content) is None:
            raise _bad("IMAGE_PROCESS_FAILED")
        caption = params.get("caption")
        if caption is not None and len(str(caption)) > MAX_CAPTION:
            raise _bad("message caption is too long")
        self._throttle(chat)
        message = self._bot_message(chat, params, caption=caption)
        photo = self._store_file(
            chat, message.message_id, upload.filename, upload.content, upload.content_type,
            caption,
        )  # fmt: skip
        message.photo = photo
        self.photos.append(photo)
        return message.to_api()

    def _send_chat_action(self, params: Json, files: dict[str, Upload]) -> bool:
        self._target(params)
        return True

    def _get_file(self, params: Json, files: dict[str, Upload]) -> Json:
        doc = self._files.get(str(params.get("file_id") or ""))
        if doc is None:
            raise _bad("invalid file_id")
        return {
            "file_id": doc.file_id,
            "file_unique_id": doc.file_unique_id,
            "file_size": len(doc.content),
            "file_path": doc.file_path,
        }

    def _set_webhook(self, params: Json, files: dict[str, Upload]) -> bool:
        if params.get("drop_pending_updates"):
            self.updates.clear()
        url = str(params.get("url") or "")
        self.webhook = dict(params, url=url) if url else {}
        self._wake()
        return True

    def _delete_webhook(self, params: Json, files: dict[str, Upload]) -> bool:
        if params.get("drop_pending_updates"):
            self.updates.clear()
        self.webhook = {}
        return True

    def _get_webhook_info(self, params: Json, files: dict[str, Upload]) -> Json:
        info: Json = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }
        for key in ("max_connections", "allowed_updates", "ip_address"):
            if key in self.webhook:
                info[key] = self.webhook[key]
        return info

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self.updates[:] = [u for u in self.updates if u["update_id"] >= offset]
        elif offset < 0:
            self.updates[:] = self.updates[offset:]

    async def _get_updates(self, params: Json, files: dict[str, Upload]) -> list[Json]:
        if self.webhook.get("url"):
            raise ApiError(409, WEBHOOK_CONFLICT)
        self._poll_generation += 1
        mine = self._poll_generation
        self._wake()  # an older long poll ends with 409
        self._confirm(int(params.get("offset") or 0))
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        allowed = set(params.get("allowed_updates") or ())
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        while True:
            changed = self._changed
            if mine != self._poll_generation:
                raise ApiError(409, POLL_CONFLICT)
            ready = [u for u in self.updates if not allowed or _update_kind(u) in allowed]
            remaining = deadline - time.monotonic()
            if ready or self._closing or remaining <= 0:
                return ready[:limit]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    @staticmethod
    def _scope_key(params: Json) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    def _set_my_commands(self, params: Json, files: dict[str, Upload]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[self._scope_key(params)] = commands
        return True

    def _get_my_commands(self, params: Json, files: dict[str, Upload]) -> list[Json]:
        return self.commands.get(self._scope_key(params), [])

    def _delete_my_commands(self, params: Json, files: dict[str, Upload]) -> bool:
        self.commands.pop(self._scope_key(params), None)
        return True
