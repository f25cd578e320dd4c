"""A Telegram Bot API server on loopback, speaking the real wire format.

aiogram talks to it through ``TelegramAPIServer.from_base(fake.base_url)``
exactly as it talks to api.telegram.org: form-encoded or multipart POSTs to
``/bot<token>/<method>``, answers in the ``{"ok": true, "result": ...}``
envelope, errors as ``{"ok": false, "error_code": ..., "description": ...,
"parameters": {"retry_after": N}}``.  Simulated users send messages and press
buttons; the test reads what the bot sent.

Covered: getMe, getUpdates (offset confirms, limit, long-poll timeout, 409
when a second poller or a webhook competes), setWebhook (the server then
POSTs updates to the URL with the secret header), deleteWebhook,
getWebhookInfo, sendMessage, sendPhoto (multipart), editMessageText,
editMessageCaption, editMessageReplyMarkup ("message is not modified"),
deleteMessage, answerCallbackQuery (answering twice fails like Telegram),
setMyCommands, close.  Texts in HTML parse mode are checked for balanced,
allowed tags ("can't parse entities") and length limits.

One instance lives in one event loop; tests that need it elsewhere run it in
a thread (:class:`ThreadedFakeTelegram`).

Timing for benchmarks: :attr:`FakeTelegram.offered_at` holds when each update
was first handed to the bot by ``getUpdates``, and what the bot sends is
stamped with the moment its request arrived (before the body is parsed).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

__all__ = ["BOT_TOKEN", "Call", "FakeTelegram", "FakeUser", "SentMessage", "ThreadedFakeTelegram"]

T = TypeVar("T")
BOT_TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijkl"
_ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "a"}
_ARRIVED: contextvars.ContextVar[float] = contextvars.ContextVar("arrived")
"""Monotonic arrival time of the request being handled (one aiohttp task per request)."""
_SENDS = {"sendMessage", "sendPhoto", "editMessageText", "editMessageCaption",
          "editMessageReplyMarkup", "answerCallbackQuery"}  # fmt: skip


@dataclass(frozen=True)
class FakeUser:
    id: int
    first_name: str = "Buyer"
    language_code: str = "en"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "is_bot": False,
            "first_name": self.first_name,
            "language_code": self.language_code,
        }


@dataclass
class SentMessage:
    """A message the bot sent (and later edited) in one chat."""

    chat_id: int
    message_id: int
    text: str | None = None
    caption: str | None = None
    photo: bytes | None = None
    reply_markup: dict[str, Any] | None = None
    edits: int = 0
    deleted: bool = False
    sent_at: float = field(default_factory=lambda: _ARRIVED.get(time.monotonic()))
    edited_at: float | None = None
    """Monotonic time of the last edit (None: never edited)."""

    @property
    def body(self) -> str:
        return self.text if self.text is not None else self.caption or ""

    def buttons(self) -> list[dict[str, Any]]:
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [button for row in rows for button in row]

    def button(self, contains: str) -> dict[str, Any]:
        """The first button whose label contains ``contains``."""
        for button in self.buttons():
            if contains in button["text"]:
                return button
        raise AssertionError(f"no button with {contains!r} in {self.buttons()}")


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]
    at: float


@dataclass
class _Fault:
    code: int | None
    description: str
    retry_after: int | None
    times: int


class FakeTelegram:
    """The Bot API for one bot, on 127.0.0.1 and a free port."""

    def __init__(self, token: str = BOT_TOKEN, username: str = "x0_test_bot") -> None:
        self.token = token
        self.bot_id = int(token.split(":")[0])
        self.username = username
        self.calls: list[Call] = []
        self.messages: dict[int, list[SentMessage]] = {}
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.offered_at: dict[int, float] = {}
        """Update id -> monotonic time ``getUpdates`` first returned it to the bot."""
        self.query_updates: dict[str, int] = {}
        """Callback query id -> the update that carried it."""
        self.webhook: dict[str, Any] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1000)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._callback_ids = itertools.count(1)
        self._faults: dict[str, list[_Fault]] = {}
        self._changed = asyncio.Condition()
        self._arrived = asyncio.Event()
        self._queries: dict[str, int] = {}
        """Callback query id -> the chat it was pressed in."""
        self._chat_events: dict[int, asyncio.Event] = {}
        self._poller: asyncio.Future[None] | None = None
        self._runner: web.AppRunner | None = None
        self._pusher: asyncio.Task[None] | None = None
        self.port = 0

    # Lifecycle -----------------------------------------------------------

    async def start(self) -> FakeTelegram:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
            self._pusher = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # What users do -------------------------------------------------------

    async def send_text(self, user: FakeUser, text: str) -> int:
        """The user writes ``text`` to the bot; returns the update id."""
        message: dict[str, Any] = {
            "message_id": self._next_message_id(user.id),
            "date": int(time.time()),
            "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
            "from": user.as_json(),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return await self._push({"message": message})

    async def press(self, user: FakeUser, message: SentMessage, data: str) -> str:
        """The user presses an inline button with ``data``; returns the callback id."""
        query_id = str(next(self._callback_ids))
        self._queries[query_id] = user.id
        self.query_updates[query_id] = await self._push(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user.as_json(),
                    "message": self._message_json(message),
                    "chat_instance": f"ci{user.id}",
                    "data": data,
                }
            }
        )
        return query_id

    # What tests observe --------------------------------------------------

    def chat(self, chat_id: int) -> list[SentMessage]:
        return [m for m in self.messages.get(chat_id, []) if not m.deleted]

    async def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout_s: float = 10.0,
        what: str = "it",
        *,
        chat_id: int | None = None,
    ) -> T:
        """Wait until ``predicate()`` is truthy; return its value.

        With ``chat_id`` the predicate is re-checked only when the bot acts in
        that chat (cheap with many waiters); otherwise after every bot call
        and every 50 ms.
        """
        deadline = time.monotonic() + timeout_s
        if chat_id is not None:
            while not (value := predicate()):
                event = self._chat_events.setdefault(chat_id, asyncio.Event())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
                try:
                    await asyncio.wait_for(event.wait(), left)
                except TimeoutError:
                    continue
            return value
        async with self._changed:
            while not (value := predicate()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
                try:  # woken by every bot call, and re-checked every 50 ms regardless
                    await asyncio.wait_for(self._changed.wait(), min(left, 0.05))
                except TimeoutError:
                    continue
            return value

    async def wait_message(
        self, chat_id: int, contains: str, timeout_s: float = 10.0, *, photo: bool = False
    ) -> SentMessage:
        """The newest message in ``chat_id`` whose text or caption contains ``contains``."""

        def find() -> SentMessage | None:
            for message in reversed(self.chat(chat_id)):
                if contains in message.body and (message.photo is not None or not photo):
                    return message
            return None

        return await self.wait_for(find, timeout_s, f"{contains!r} in chat {chat_id}")

    def count(self, method: str) -> int:
        return sum(1 for call in self.calls if call.method == method)

    def pending_updates(self) -> int:
        return len(self._updates)

    def fail(
        self,
        method: str,
        *,
        code: int | None = 429,
        retry_after: int | None = None,
        description: str = "Too Many Requests: retry later",
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an error.

        ``code=None`` drops the connection without an answer (a network error).
        """
        self._faults.setdefault(method, []).append(_Fault(code, description, retry_after, times))

    # HTTP ------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        _ARRIVED.set(time.monotonic())
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await _params(request)
        self.calls.append(Call(method, params, _ARRIVED.get()))
        fault = self._take_fault(method)
        if fault is not None:
            if fault.code is None:
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            return _error(fault.code, fault.description, fault.retry_after)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        try:
            result = await handler(params)
        except _ApiError as exc:
            return _error(exc.code, exc.description)
        if method in _SENDS:
            chat = self._queries.get(params.get("callback_query_id", "")) or params.get("chat_id")
            if chat is not None and (event := self._chat_events.pop(int(chat), None)):
                event.set()
            async with self._changed:
                self._changed.notify_all()
        return web.json_response({"ok": True, "result": result})

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        return fault

    # Bot API methods -------------------------------------------------------

    async def _api_getMe(self, _p: dict[str, Any]) -> dict[str, Any]:
        return self._bot_user()

    async def _api_close(self, _p: dict[str, Any]) -> bool:
        return True

    async def _api_setMyCommands(self, p: dict[str, Any]) -> bool:
        _json(p, "commands")
        return True

    async def _api_getUpdates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook.get("url"):
            raise _ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(p.get("offset") or 0)
        limit = min(100, int(p.get("limit") or 100))
        timeout = float(p.get("timeout") or 0)
        if self._poller is not None and not self._poller.done():
            self._poller.set_result(None)  # the older request gets 409, like Telegram's
        poller = self._poller = asyncio.get_running_loop().create_future()
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        while not self._updates and (left := deadline - time.monotonic()) > 0:
            self._arrived.clear()
            waiter = asyncio.ensure_future(self._arrived.wait())
            done, _ = await asyncio.wait(
                {waiter, poller}, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            if poller in done:
                raise _ApiError(409, "Conflict: terminated by other getUpdates request")
        batch = self._updates[:limit]
        now = time.monotonic()
        for update in batch:
            self.offered_at.setdefault(update["update_id"], now)
        return batch

    async def _api_setWebhook(self, p: dict[str, Any]) -> bool:
        url = p.get("url") or ""
        if url and not url.startswith(("http://", "https://")):
            raise _ApiError(400, "Bad Request: bad webhook: invalid URL")
        self.webhook = {"url": url, "secret_token": p.get("secret_token") or ""}
        if self._pusher is not None:
            self._pusher.cancel()
        self._pusher = asyncio.create_task(self._push_webhook()) if url else None
        return True

    async def _api_deleteWebhook(self, p: dict[str, Any]) -> bool:
        self.webhook = {}
        if self._pusher is not None:
            self._pusher.cancel()
            self._pusher = None
        if str(p.get("drop_pending_updates", "")).lower() == "true":
            self._updates.clear()
        return True

    async def _api_getWebhookInfo(self, _p: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    async def _api_sendMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        text = _html(_required(p, "text"), 4096, p)
        message = self._new_message(p, text=text)
        return self._message_json(message)

    async def _api_sendPhoto(self, p: dict[str, Any]) -> dict[str, Any]:
        photo = p.get("photo")
        if not isinstance(photo, bytes) or not photo.startswith(b"\x89PNG"):
            raise _ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
        caption = _html(p.get("caption") or "", 1024, p)
        message = self._new_message(p, caption=caption, photo=photo)
        return self._message_json(message)

    async def _api_editMessageText(self, p: dict[str, Any]) -> dict[str, Any]:
        message = self._find(p)
        if message.text is None:
            raise _ApiError(400, "Bad Request: there is no text in the message to edit")
        return self._edit(message, p, text=_html(_required(p, "text"), 4096, p))

    async def _api_editMessageCaption(self, p: dict[str, Any]) -> dict[str, Any]:
        message = self._find(p)
        return self._edit(message, p, caption=_html(p.get("caption") or "", 1024, p))

    async def _api_editMessageReplyMarkup(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._edit(self._find(p), p)

    async def _api_deleteMessage(self, p: dict[str, Any]) -> bool:
        self._find(p).deleted = True
        return True

    async def _api_answerCallbackQuery(self, p: dict[str, Any]) -> bool:
        query_id = _required(p, "callback_query_id")
        if query_id in self.callback_answers or query_id not in self._queries:
            raise _ApiError(400, "Bad Request: query is too old and response timeout expired")
        self.callback_answers[query_id] = {
            "text": p.get("text"),
            "show_alert": str(p.get("show_alert", "")).lower() == "true",
            "at": _ARRIVED.get(),
        }
        return True

    # Internals -------------------------------------------------------------

    async def _push(self, body: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        self._updates.append({"update_id": update_id, **body})
        self._arrived.set()
        return update_id

    async def _push_webhook(self) -> None:
        """Deliver queued updates to the webhook one by one, like Telegram does."""
        async with aiohttp.ClientSession() as session:
            while True:
                if not self._updates:
                    self._arrived.clear()
                    await self._arrived.wait()
                    continue
                update = self._updates[0]
                headers = {"X-Telegram-Bot-Api-Secret-Token": self.webhook["secret_token"]}
                try:
                    async with session.post(
                        self.webhook["url"], json=update, headers=headers
                    ) as resp:
                        delivered = resp.status == 200
                except aiohttp.ClientError:
                    delivered = False
                if delivered and self._updates and self._updates[0] is update:
                    self._updates.pop(0)
                elif not delivered:
                    await asyncio.sleep(0.2)

    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _new_message(self, p: dict[str, Any], **content: Any) -> SentMessage:
        chat_id = int(_required(p, "chat_id"))
        message = SentMessage(
            chat_id=chat_id,
            message_id=self._next_message_id(chat_id),
            reply_markup=_json(p, "reply_markup"),
            **content,
        )
        self.messages.setdefault(chat_id, []).append(message)
        return message

    def _find(self, p: dict[str, Any]) -> SentMessage:
        chat_id, message_id = int(_required(p, "chat_id")), int(_required(p, "message_id"))
        for message in self.messages.get(chat_id, []):
            if message.message_id == message_id and not message.deleted:
                return message
        raise _ApiError(400, "Bad Request: message to edit not found")

    def _edit(self, message: SentMessage, p: dict[str, Any], **content: Any) -> dict[str, Any]:
        markup = _json(p, "reply_markup")
        before = (message.text, message.caption, message.reply_markup)
        for key, value in content.items():
            setattr(message, key, value)
        message.reply_markup = markup
        if (message.text, message.caption, message.reply_markup) == before:
            raise _ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup",
            )
        message.edits += 1
        message.edited_at = _ARRIVED.get(time.monotonic())
        return self._message_json(message)

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "x0tta6bl4 test shop",
            "username": self.username,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _message_json(self, message: SentMessage) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message_id": message.message_id,
            "date": int(time.time()),
            "chat": {"id": message.chat_id, "type": "private", "first_name": "Buyer"},
            "from": self._bot_user(),
        }
        if message.text is not None:
            body["text"] = _strip_tags(message.text)
        if message.photo is not None:
            body["photo"] = [
                {
                    "file_id": f"photo-{message.chat_id}-{message.message_id}",
                    "file_unique_id": f"u{message.chat_id}x{message.message_id}",
                    "width": 320,
                    "height": 320,
                    "file_size": len(message.photo),
                }
            ]
            if message.caption:
                body["caption"] = _strip_tags(message.caption)
        if message.reply_markup:
            body["reply_markup"] = message.reply_markup
        return body


class ThreadedFakeTelegram:
    """A :class:`FakeTelegram` on its own event loop in a thread.

    For callers whose own loop is busy elsewhere (a benchmark's bot, a Ray
    actor test): ``run(coro_fn)`` executes ``coro_fn(fake)`` on the fake's loop.
    """

    def __init__(self, token: str = BOT_TOKEN) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.fake = self.call(FakeTelegram(token).start())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def acall(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        self.call(self.fake.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def __enter__(self) -> ThreadedFakeTelegram:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _error(code: int, description: str, retry_after: int | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=code)


async def _params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            params.update(await request.json())
        else:
            for key, value in (await request.post()).items():
                params[key] = value.file.read() if isinstance(value, web.FileField) else value
    for key, value in list(params.items()):
        if isinstance(value, str) and value.startswith("attach://"):
            params[key] = params.pop(value.removeprefix("attach://"), None)
    return params


def _required(p: dict[str, Any], key: str) -> Any:
    value = p.get(key)
    if value in (None, ""):
        raise _ApiError(400, f"Bad Request: {key} is empty")
    return value


def _json(p: dict[str, Any], key: str) -> Any:
    value = p.get(key)
    if value is None or isinstance(value, dict | list):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise _ApiError(400, f"Bad Request: can't parse {key} JSON object") from exc


def _html(text: str, limit: int, p: dict[str, Any]) -> str:
    if p.get("parse_mode") == "HTML":
        checker = _TagChecker()
        checker.feed(text)
        checker.close()
        if checker.problem:
            raise _ApiError(400, f"Bad Request: can't parse entities: {checker.problem}")
    if len(_strip_tags(text)) > limit:
        raise _ApiError(400, "Bad Request: message is too long")
    return text


def _strip_tags(text: str) -> str:
    stripper = _TagChecker()
    stripper.feed(text)
    stripper.close()
    return "".join(stripper.plain)


class _TagChecker(HTMLParser):
    """Telegram's HTML subset: a few tags, properly nested, entities escaped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.plain: list[str] = []
        self.problem = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _ALLOWED_TAGS:
            self.problem = self.problem or f"unsupported start tag {tag!r}"
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problem = self.problem or f"unexpected end tag {tag!r}"

    def handle_data(self, data: str) -> None:
        self.plain.append(data)

    def close(self) -> None:
        super().close()
        if self.stack:
            self.problem = self.problem or f"unclosed tag {self.stack[-1]!r}"
