"""Signing in to the console with a staff API key, and signing out (``/console/login``)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ticketing.console.blueprint import bp
from ticketing.console.guard import local_path, signed_in
from ticketing.console.session import SignInRefused, sign_in, sign_out


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    next_page = local_path(request.values.get("next"))
    if request.method == "GET":
        if signed_in() is not None:
            return redirect(next_page or url_for("console.queue"))
        return render_template("console/login.html", next=next_page, error=None)
    raw = request.form.get("api_key", "")
    try:
        if not raw.strip() or len(raw) > 200:
            raise SignInRefused(401, "That API key is not valid.")
        sign_in(raw)
    except SignInRefused as refused:
        return render_template(
            "console/login.html", next=next_page, error=refused.message
        ), refused.status
    return redirect(next_page or url_for("console.queue"), 303)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    sign_out()
    flash("You are signed out.", "info")
    return redirect(url_for("console.login"), 303)
