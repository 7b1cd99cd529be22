"""Errors of the web endpoints: an HTTP status plus the same bilingual words as refusals."""
from __future__ import annotations


class WebError(Exception):
    def __init__(self, status: int, code: str, vi: str, en: str, retry_after: int | None = None):
        super().__init__(f"{status} {code}: {en}")
        self.status, self.code, self.vi, self.en = status, code, vi, en
        self.retry_after = retry_after

    def body(self) -> dict:
        return {"ok": False, "error": self.code, "message_vi": self.vi, "message_en": self.en}


def bad_request(detail_en: str) -> WebError:
    return WebError(400, "bad_request", "Yêu cầu không hợp lệ: " + detail_en, "Bad request: " + detail_en)


def not_found(what_vi: str, what_en: str) -> WebError:
    return WebError(404, "not_found", f"Không tìm thấy {what_vi}.", f"{what_en} not found.")


def unauthorized() -> WebError:
    return WebError(401, "unauthorized", "Thiếu mã truy cập hoặc mã không đúng.",
                    "Missing or wrong access token (Authorization: Bearer <token>).")


def forbidden(scope: str) -> WebError:
    return WebError(403, "forbidden", "Mã truy cập này không được phép thực hiện thao tác này.",
                    f"This token is not allowed to do this (needs scope {scope!r}).")


def too_many(retry_after: int) -> WebError:
    return WebError(429, "rate_limited", f"Quá nhiều yêu cầu. Xin thử lại sau {retry_after} giây.",
                    f"Too many requests. Try again in {retry_after} s.", retry_after=retry_after)


def unavailable(vi: str, en: str) -> WebError:
    return WebError(503, "unavailable", vi, en, retry_after=5)
