"""ISO 3166-1 alpha-2 country codes and the continent of each, as networks see them.

The continent is the coarse fallback for latency between countries that no table measured
(`routing/latency.py`). Where geography and the network disagree the network wins: Turkey,
Cyprus and Russia sit with Europe (their traffic goes through European exchanges), the Caucasus
with Asia. Antarctica's codes are kept so every assigned code is known.
"""

_BY_CONTINENT = {
    "AF": (  # Africa
        "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY MA "
        "MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA ZM ZW"
    ),
    "AN": "AQ BV GS HM TF",  # Antarctica and the far southern islands
    "AS": (  # Asia
        "AE AF AM AZ BD BH BN BT CC CN CX GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ LA LB "
        "LK MM MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TL TM TW UZ VN YE"
    ),
    "EU": (  # Europe
        "AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE "
        "LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM TR UA VA XK"
    ),
    "NA": (  # North America, Central America and the Caribbean
        "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS MX "
        "NI PA PM PR SV SX TC TT UM US VC VG VI"
    ),
    "OC": (  # Oceania
        "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV VU WF WS"
    ),
    "SA": "AR BO BR CL CO EC FK GF GY PE PY SR UY VE",  # South America
}

# XK (Kosovo) is user-assigned, not ISO, but RIPE Atlas and most geo-IP databases use it.
CONTINENT: dict[str, str] = {
    code: continent for continent, codes in _BY_CONTINENT.items() for code in codes.split()
}


def country_code(value: str) -> str | None:
    """`value` as an upper-case country code when it is one we know, else None."""
    code = value.strip().upper()
    return code if code in CONTINENT else None
