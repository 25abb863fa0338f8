"""The JSON bodies the API accepts, as pydantic models (they also make the OpenAPI schema).

Field types and sizes are checked here (a failure is a 422 with one line naming the field); the
sampling options' ranges are checked by `charnn.sample.check_options`, the same function the
command line calls, so the server and `charnn sample` refuse the same values. A model is named by
its id from /api/models: a value that looks like a path is refused outright.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .limits import MAX_LENGTH, MAX_PROMPT, MAX_TEXT


def check_id(v: str) -> str:
    """An id from /api/models or /api/runs; never a path."""
    if any(s in v for s in ("/", "\\", "..", "\x00", ":", "~")):
        raise ValueError("must be an id from /api/models, not a path")
    return v


class GenerateRequest(BaseModel):
    """POST /api/generate: continue `prompt` by `length` characters."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=128, description="a model id from /api/models")
    prompt: str = Field("", max_length=MAX_PROMPT, description="text that primes the state; '' starts from h = 0")
    length: int = Field(200, description=f"characters to generate, 0 to {MAX_LENGTH}")
    temperature: float = Field(1.0, description="softmax temperature, a finite number > 0")
    top_k: int = Field(0, description="sample among the k most likely characters; 0 = all")
    top_p: float = Field(1.0, description="sample among the most likely characters whose probabilities "
                                          "sum to at least p, in (0, 1]; 1 = all")
    seed: int | None = Field(None, ge=0, lt=2**63, description="sampling seed; none = a new one, returned")
    stream: bool = Field(False, description="answer as server-sent events, one per chunk of characters")

    _model = field_validator("model")(check_id)


class InsideRequest(BaseModel):
    """POST /api/inside: read a text (or a slice of the run's validation split) and look inside."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=128, description="a model id from /api/models")
    text: str | None = Field(None, max_length=MAX_TEXT, description="the text to read (2 characters or more)")
    split: Literal["val"] | None = Field(None, description="read the run's validation split instead of `text`")
    start: int = Field(0, ge=0, description="with split: the first character of the slice")
    length: int = Field(2000, ge=2, le=MAX_TEXT, description="with split: characters in the slice")

    _model = field_validator("model")(check_id)
