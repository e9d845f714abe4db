"""Checks a request passes before its route runs (routers that take them add ``NoNul``)."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request

_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


async def refuse_nul(request: Request) -> None:
    """A NUL character in the path, the query or a form field is a 400: no text needs one, and
    PostgreSQL cannot store or even compare it (its drivers raise instead)."""
    values = [*request.path_params.values(), *request.query_params.keys(), *request.query_params.values()]
    if request.headers.get("content-type", "").startswith(_FORMS):
        form = await request.form()
        values += [*form.keys(), *(v for v in form.values() if isinstance(v, str))]
    if any("\x00" in str(value) for value in values):
        raise HTTPException(400, "The request contains a NUL character, which no field accepts.")


NoNul = Depends(refuse_nul)
