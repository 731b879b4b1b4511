"""What the VTEX storefront clients the tests replay send and read, in one place: render-session's
item list, FastStore's, and the segment token they decode (base64 JSON)."""

from __future__ import annotations

import base64

import orjson

# FastStore commerce/index.ts `session`: the items it asks for (v3.100.3; 4.x adds one shopper key).
FASTSTORE_ITEMS = (
    "profile.id,profile.email,profile.firstName,profile.lastName,profile.phone,shopper.firstName,"
    "shopper.lastName,shopper.organizationManager,store.channel,store.countryCode,store.cultureInfo,"
    "store.currencyCode,store.currencySymbol,authentication.customerId,authentication.storeUserId,"
    "authentication.storeUserEmail,authentication.unitId,authentication.unitName,checkout.regionId,"
    "public.postalCode"
)
# render-session v1.9.2 src/constants.ts: ITEMS.
RENDER_SESSION_ITEMS = (
    "account.id,account.accountName,store.channel,store.countryCode,store.cultureInfo,store.currencyCode,"
    "store.currencySymbol,store.admin_cultureInfo,creditControl.creditAccounts,creditControl.deadlines,"
    "creditControl.minimumInstallmentValue,authentication.storeUserId,authentication.storeUserEmail,"
    "profile.firstName,profile.document,profile.email,profile.id,profile.isAuthenticated,profile.lastName,"
    "profile.phone,public.favoritePickup,public.utm_source,public.utm_medium,public.utm_campaign,"
    "public.utmi_cp,public.utmi_p,public.utmi_pc"
)


def decode_segment(token: str) -> dict:
    """A segment token's content, as the clients read it."""
    return orjson.loads(base64.b64decode(token))
