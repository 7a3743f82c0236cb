"""Build ingest/sql_functions.py, the functions users' SQL may call, from the engine's own list.

    python -m ingest.sql_functions_build > ingest/sql_functions.py

Rerun it after a chDB/ClickHouse upgrade and review the diff: a function the new engine adds is
refused until it is on the list, so an upgrade can only make users' SQL stricter, never looser.

The policy, allowlist style: a function is kept when its `system.functions` category is one of
KEPT_CATEGORIES (pure computation over the values it is given) and it is not in DROPPED, or when
it is named in KEPT_NAMES (the few harmless ones of the mixed categories `Other` and `Internal`).
Everything else is refused, notably the categories that reach outside a query's own rows:
`Dictionary`/`Embedded Dictionary` (other data and server files), `Introspection` (addresses,
symbols, the server log), `AI` (calls out to model providers), and in `Other` the functions that
read files (file), settings, macros, the server's identity and state (hostName, uptime, serverUUID,
getSetting, getMacro, filesystem*, showCertificate, tcpPort...), the session (roles, profiles,
query ids, HTTP headers), other tables and databases (joinGet, hasColumnInTable),
Keeper (generateSerialID), and sleep/throwIf-style denial of service. An alias is kept when the
function it names is kept. version() and currentUser() are kept: every client asks for them on
connecting (the ClickHouse HTTP interface, ingest/http_sql.py, sends them through these checks), and
they tell only what that interface says in every reply anyway (the version in each error, the user
a key reads as).
"""

from __future__ import annotations

import textwrap

KEPT_CATEGORIES = {
    "Aggregate Functions", "Arithmetic", "Arrays", "Bit", "Bitmap", "Comparison", "Conditional",
    "Dates and Times", "Distance", "Encoding", "Encryption", "Financial", "Geo", "Geo Polygon", "Hash",
    "IP Address", "JSON", "Logical", "Machine Learning", "Map", "Mathematical", "Null",
    "NumericIndexedVector", "QBit", "Random Number", "Rounding", "String", "String Replacement",
    "String Search", "String Splitting", "Time Series", "Time Window", "Tuple", "Type Conversion",
    "URL", "UUID",
}
# Functions of kept categories that still reach outside the query or misbehave on purpose.
DROPPED = {
    "chdb": "the engine's version",
    "serverTimezone": "the server's configuration",
    "formatRow": "output formats may read schema files named by settings",
    "formatRowNoNewline": "output formats may read schema files named by settings",
    "groupFormat": "output formats may read schema files named by settings",
    "assignCentroid": "may read a dictionary",
    "naiveBayesClassifier": "reads models named in the server's configuration",
    "naiveBayesClassifierWithAllProbs": "reads models named in the server's configuration",
    "naiveBayesClassifierWithProb": "reads models named in the server's configuration",
    "aggThrow": "throws on purpose (a testing aid)",
    "flameGraph": "symbolises code addresses (introspection)",
    **{name: "the index analysis' own form of IN, whose table argument escapes the checks of IN" for name in (
        "inIgnoreSet", "notInIgnoreSet", "nullInIgnoreSet", "notNullInIgnoreSet", "globalInIgnoreSet",
        "globalNotInIgnoreSet", "globalNullInIgnoreSet", "globalNotNullInIgnoreSet")},
}
# The harmless functions of the categories that are otherwise refused.
KEPT_NAMES = {
    # Other: formatting, types, blocks, query text, aggregation states.
    "MACNumToString", "MACStringToNum", "MACStringToOUI", "bar", "blockNumber", "blockSerializedSize",
    "blockSize", "byteSize", "colorOKLABToSRGB", "colorOKLCHToSRGB", "colorSRGBToOKLAB", "colorSRGBToOKLCH",
    "countDigits", "currentDatabase", "currentSchemas", "defaultValueOfArgumentType", "defaultValueOfTypeName",
    "digits", "dumpColumnStructure", "errorCodeToName", "finalizeAggregation", "flipCoordinates", "formatQuery",
    "formatQueryFromJSON", "formatQueryOrNull", "formatQuerySingleLine", "formatQuerySingleLineOrNull",
    "formatReadableDecimalSize", "formatReadableQuantity", "formatReadableSize", "formatReadableTimeDelta",
    "generateRandomStructure", "getSizeOfEnumType", "getSubcolumn", "getTypeSerializationStreams",
    "highlightQuery", "icebergBucket", "icebergTruncate", "identity", "ignore", "indexHint",
    "initializeAggregation", "isConstant", "isDecimalOverflow", "lowCardinalityIndices", "lowCardinalityKeys",
    "materialize", "minSampleSizeContinuous", "minSampleSizeConversion", "neighbor", "normalizeQuery",
    "normalizeQueryKeepNames", "normalizedQueryHash", "normalizedQueryHashKeepNames", "obfuscateQuery",
    "obfuscateQueryWithSeed", "parseISO8601Duration", "parseQueryToJSON", "parseReadableSize",
    "parseReadableSizeOrNull", "parseReadableSizeOrZero", "parseTimeDelta", "partitionId",
    "rowNumberInAllBlocks", "rowNumberInBlock", "runningAccumulate", "runningConcurrency", "runningDifference",
    "runningDifferenceStartingWithFirstValue", "structureToCapnProtoSchema", "structureToProtobufSchema",
    "toColumnTypeName", "toTypeName", "tokenizeQuery", "transform", "variantElement", "variantType",
    "visibleWidth",
    # Other: what clients ask on connecting (clickhouse-connect, JDBC, Grafana): the server's version
    # (in every error message already) and the name of the user queries run as.
    "currentUser", "version",
    # Internal: what the parser itself writes for CAST and CASE.
    "_CAST", "caseWithExpression", "nested",
}
# Functions the parser writes that system.functions does not list: `x -> ...`, GROUPING(...),
# untuple(...) and EXISTS (subquery).
SYNTAX = ["exists", "grouping", "lambda", "untuple"]
# Table functions that only make rows of their own; the rest read files, URLs, other servers,
# other tables or run programs. view() is left out: a subquery does the same.
TABLE_FUNCTIONS = ["generateSeries", "generate_series", "numbers", "numbers_mt", "values", "zeros", "zeros_mt"]

QUERY = """
SELECT f.name, f.is_aggregate, f.case_insensitive, if(f.alias_to = '', f.categories, t.categories),
       if(f.alias_to = '', f.name, f.alias_to)
FROM system.functions AS f
LEFT JOIN (SELECT name, categories FROM system.functions WHERE alias_to = '') AS t ON t.name = f.alias_to
WHERE f.origin = 'System'
ORDER BY f.name
"""


def kept(name: str, category: str) -> bool:
    """Whether the policy keeps a function (for an alias: the function it names)."""
    return name in KEPT_NAMES or (category in KEPT_CATEGORIES and name not in DROPPED)


def build() -> str:
    import chdb  # deferred: only this tool and the tests import the engine for its function list

    engine = chdb.connect(":memory:")
    version = engine.query("SELECT version()", "TSVRaw").bytes().decode().strip()
    combinators = engine.query("SELECT name FROM system.aggregate_function_combinators ORDER BY name",
                               "TSVRaw").bytes().decode().split()
    rows = [line.split("\t") for line in engine.query(QUERY, "TSVRaw").bytes().decode().splitlines()]
    engine.close()
    allowed, aggregates, insensitive = [], [], []
    for name, aggregate, case_insensitive, category, target in rows:
        if kept(target, category):
            allowed.append(name)
            if aggregate == "1":
                aggregates.append(name)
            if case_insensitive == "1":
                insensitive.append(name.lower())
    refused = len(rows) - len(allowed)
    return f'''"""The functions users' SQL may call: an allowlist. Generated, do not edit by hand.

Built by `python -m ingest.sql_functions_build > ingest/sql_functions.py` from `system.functions`
of ClickHouse {version} (chDB), with the policy written in ingest/sql_functions_build.py:
{len(allowed)} of {len(rows)} names kept, {refused} refused. A function not listed here is refused, so a
newer engine's new functions stay refused until this list is rebuilt and reviewed.
"""

ENGINE_VERSION = "{version}"

# Exact names (aliases included) of the functions users' SQL may call.
FUNCTIONS = frozenset({_names(allowed)})

# Lowercased names of the functions above that ClickHouse resolves whatever their case.
CASE_INSENSITIVE = frozenset({_names(sorted(set(insensitive)))})

# The aggregate functions above, which the combinators below may extend (sumIf, uniqStateIf...).
AGGREGATES = frozenset({_names(aggregates)})
COMBINATORS = ({_names(sorted(combinators, key=lambda c: (-len(c), c)))})

# Written by the parser, absent from system.functions.
SYNTAX = frozenset({_names(SYNTAX)})

# Table functions (FROM f(...)) that only make rows of their own.
TABLE_FUNCTIONS = frozenset({_names(TABLE_FUNCTIONS)})
'''


def _names(names: list[str]) -> str:
    body = ", ".join(f'"{n}"' for n in names)
    return "(\n" + textwrap.fill(body, 100, initial_indent="    ", subsequent_indent="    ",
                                  break_on_hyphens=False) + ",\n)" if names else "()"


if __name__ == "__main__":
    print(build(), end="")
