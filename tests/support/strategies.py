"""Hypothesis strategies for event sequences that exercise the fold and the transformers."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from hypothesis import strategies as st

from tests.support.events import campaign_click, logged_in, logged_out, page_view, public_set

# Keys and values the transformers react to, mixed with arbitrary ones.
keys = st.sampled_from(
    ["utm_source", "utm_campaign", "utmi_cp", "country", "postalCode", "cultureInfo", "locale",
     "storeUserEmail", "regionId", "color", "q"]
)  # fmt: skip
texts = st.sampled_from(["blackfriday", "BlackFriday", "google", "BRA", "04561000", "04561-000", "pt-BR", "",
                         "joao@example.com", "x", "tênis azul"])  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | texts
    | st.floats(allow_nan=False, allow_infinity=False, width=32),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2),
    max_leaves=5,
)  # fmt: skip


@st.composite
def event_sequences(draw):
    sid = str(uuid.uuid4())
    events = []
    for n in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["page", "click", "public", "login", "logout"]))
        if kind == "page":
            params = draw(st.dictionaries(keys, texts, max_size=4))
            events.append(page_view(sid, f"https://shop.example/p?{urlencode(params)}", n))
        elif kind == "click":
            utm = draw(st.dictionaries(st.sampled_from(["utm_source", "utm_campaign", "utmi_cp"]), texts, max_size=3))
            events.append(campaign_click(sid, n, **utm))
        elif kind == "public":
            events.append(public_set(sid, draw(st.dictionaries(keys, json_values, min_size=1, max_size=3)), n))
        elif kind == "login":
            email = draw(st.sampled_from(["joao@example.com", "maria@example.com"]))
            tables = draw(st.lists(st.sampled_from(["vip", "b2b"]), max_size=2))
            events.append(logged_in(sid, f"u-{email[:4]}", email, n, firstName="Ana", priceTables=tables))
        else:
            events.append(logged_out(sid, n))
    return sid, events
