"""Request body limits enforced on the bytes as they arrive, whatever the headers say
(``Content-Length`` absent, false, or ``Transfer-Encoding: chunked``)."""

from __future__ import annotations

from api import problems

CLOSE = (b"connection", b"close")


def too_large(limit: int):
    response = problems.problem(413, "body-too-large", "Body too large",
                                f"request bodies here may be at most {limit} bytes")
    response.headers["Connection"] = "close"
    return response


async def refuse(scope, receive, send, limit: int) -> None:
    await too_large(limit)(scope, receive, send)


def limited(scope, receive, send, limit: int):
    """A ``receive`` that counts the body's bytes and a ``send`` to use with it.

    When the count passes ``limit`` the client is answered 413 (and the connection is
    closed), the application is told the client went away, and whatever the application
    sends afterwards is dropped: it never holds more than ``limit`` bytes of the body.
    """
    state = {"received": 0, "over": False, "started": False}

    async def send_checked(message) -> None:
        if state["over"]:
            return
        if message["type"] == "http.response.start":
            state["started"] = True
        await send(message)

    async def receive_counted():
        if state["over"]:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            state["received"] += len(message.get("body", b""))
            if state["received"] > limit:
                if not state["started"]:
                    response = too_large(limit)
                    await response(scope, receive, send)
                state["over"] = True
                return {"type": "http.disconnect"}
        return message

    return receive_counted, send_checked
