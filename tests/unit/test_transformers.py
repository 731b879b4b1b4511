import pytest

from projections.rules import parse_rules
from projections.session import fold
from projections.transformers import (
    MAX_ROUNDS,
    Transformer,
    TransformerContractError,
    run_transformers,
)
from schemas.events import event_from_object
from streams.devkit.events import (
    campaign_click,
    logged_in,
    logged_out,
    new_session_id,
    page_view,
    public_set,
    session_created,
)
from streams.devkit.paths import sample_rules

pytestmark = pytest.mark.unit

RULES = sample_rules()


def run(*objects):
    return fold((event_from_object(o) for o in objects), rules=RULES)


def values(state, namespace):
    return {k: v["value"] for k, v in state.namespaces.get(namespace, {}).items()}


def test_a_new_session_gets_the_store_defaults_and_the_account():
    sid = new_session_id()
    state = run(session_created(sid))
    assert values(state, "store") == {
        "channel": "1",
        "countryCode": "BRA",
        "cultureInfo": "en-US",
        "currencyCode": "BRL",
        "currencySymbol": "R$",
        "channelPrivacy": "public",
    }
    assert values(state, "account") == {"accountName": "demo", "id": "a8b27fb4-6516-4cc0-82b6-a5f2b011e6e2"}
    assert values(state, "profile") == {"isAuthenticated": "false"}


def test_locale_overrides_the_culture_and_removing_it_restores_the_default():
    sid = new_session_id()
    assert values(run(session_created(sid), public_set(sid, {"cultureInfo": "pt-BR"})), "store")["cultureInfo"] == (
        "pt-BR"
    )
    state = run(session_created(sid), public_set(sid, {"cultureInfo": "pt-BR"}), public_set(sid, {"locale": "es-AR"}))
    assert values(state, "store")["cultureInfo"] == "es-AR"
    state = run(session_created(sid), public_set(sid, {"cultureInfo": "pt-BR"}), public_set(sid, {"cultureInfo": ""}))
    assert values(state, "store")["cultureInfo"] == "en-US"


def test_a_campaign_link_puts_the_promotional_price_table_on_the_session():
    sid = new_session_id()
    state = run(session_created(sid), page_view(sid, "https://s/?utm_source=news&utm_campaign=BlackFriday"))
    assert values(state, "rnb") == {"campaigns": "blackfriday", "priceTables": "promo-bf"}
    assert values(state, "profile")["priceTables"] == "promo-bf"


def test_a_campaign_click_event_reaches_the_campaigns_too():
    sid = new_session_id()
    state = run(campaign_click(sid, utm_campaign="blackfriday"))
    assert values(state, "rnb")["campaigns"] == "blackfriday"


def test_an_unknown_campaign_matches_nothing():
    state = run(page_view(new_session_id(), "https://s/?utm_campaign=summer"))
    assert "rnb" not in state.namespaces
    assert "priceTables" not in values(state, "profile")


def test_country_and_postal_code_give_the_region():
    sid = new_session_id()
    state = run(public_set(sid, {"country": "bra", "postalCode": "04561-000"}))
    assert values(state, "checkout") == {"regionId": "v2.1BB18CE648B5111D0933734ED83EC783"}
    moved = run(public_set(sid, {"country": "bra", "postalCode": "04561-000"}), public_set(sid, {"postalCode": "1"}))
    assert "checkout" not in moved.namespaces


def test_login_fills_authentication_and_profile_and_logout_clears_them():
    sid = new_session_id()
    login = logged_in(sid, "u-1", "joao@example.com", 1, firstName="João", lastName="Silva", priceTables=["vip"])
    state = run(session_created(sid), login)
    assert values(state, "authentication") == {"storeUserId": "u-1", "storeUserEmail": "joao@example.com"}
    assert values(state, "profile") == {
        "id": "u-1",
        "email": "joao@example.com",
        "firstName": "João",
        "lastName": "Silva",
        "priceTables": "gold,vip",
        "isAuthenticated": "true",
    }
    after = run(session_created(sid), login, logged_out(sid, 2))
    assert after.id == sid
    assert "authentication" not in after.namespaces
    assert values(after, "profile") == {"isAuthenticated": "false"}
    assert after.facts == {}


def test_identification_without_login_loads_only_the_price_tables():
    sid = new_session_id()
    state = run(session_created(sid), public_set(sid, {"storeUserEmail": "JOAO@example.com"}))
    assert values(state, "profile") == {"priceTables": "gold", "isAuthenticated": "false"}
    assert "authentication" not in state.namespaces


def test_campaign_and_customer_price_tables_combine():
    sid = new_session_id()
    state = run(
        public_set(sid, {"storeUserEmail": "joao@example.com"}),
        page_view(sid, "https://s/?utm_campaign=blackfriday"),
    )
    assert values(state, "profile")["priceTables"] == "gold,promo-bf"


def test_clients_cannot_overwrite_derived_namespaces_through_public():
    sid = new_session_id()
    state = run(public_set(sid, {"isAuthenticated": "true"}))
    assert values(state, "profile") == {"isAuthenticated": "false"}


def test_a_transformer_may_write_only_its_declared_outputs():
    sneaky = Transformer("sneaky", frozenset({"public.a"}), frozenset({"x.y"}), lambda i, r: {"profile.id": "1"})
    with pytest.raises(TransformerContractError, match="undeclared outputs"):
        run_transformers({}, {}, RULES, {"public.a"}, transformers=(sneaky,))


def test_a_transformer_may_read_only_its_declared_inputs():
    nosy = Transformer("nosy", frozenset({"public.a"}), frozenset({"x.y"}), lambda i, r: {"x.y": i.get("public.b")})
    with pytest.raises(TransformerContractError, match="undeclared input"):
        run_transformers({}, {}, RULES, {"public.a"}, transformers=(nosy,))


def test_chains_run_to_a_fixpoint():
    first = Transformer("first", frozenset({"public.a"}), frozenset({"x.b"}), lambda i, r: {"x.b": i.get("public.a")})
    second = Transformer("second", frozenset({"x.b"}), frozenset({"y.c"}), lambda i, r: {"y.c": f"{i.get('x.b')}!"})
    result = run_transformers({"public": {"a": {"value": "hi"}}}, {}, RULES, {"public.a"}, transformers=(second, first))
    assert result["y"] == {"c": {"value": "hi!"}}


def test_a_cycle_stops_at_the_cap_and_is_logged(caplog):
    calls = []

    def flip(inputs, rules):
        calls.append(1)
        return {"x.n": (inputs.get("x.n") or 0) + 1}

    loop = Transformer("loop", frozenset({"x.n"}), frozenset({"x.n"}), flip)
    result = run_transformers({}, {}, RULES, {"x.n"}, transformers=(loop,))
    assert len(calls) == MAX_ROUNDS
    assert result["x"]["n"]["value"] == MAX_ROUNDS
    assert "a cycle" in caplog.text


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"acounts": {}}, "$.acounts"),
        ({"default_account": "nope"}, "$.default_account"),
        ({"accounts": {"a": {"chanel": "1"}}}, "$.accounts.a.chanel"),
        ({"campaigns": [{"name": "x", "when": {}}]}, "$.campaigns[0].when"),
        ({"campaigns": [{"name": "x", "when": {"utm_foo": "y"}}]}, "$.campaigns[0].when.utm_foo"),
        ({"regions": [{"country": "BRA", "region_id": "r"}]}, "$.regions[0]"),
        ({"customers": {"a@b.c": {"price_tables": "gold"}}}, "$.customers"),
    ],
)
def test_bad_rules_name_the_entry(document, path):
    with pytest.raises(ValueError, match=path.replace("[", r"\[").replace("]", r"\]").replace("$", r"\$")):
        parse_rules(document)
