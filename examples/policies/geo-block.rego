# Geo-blocking: refuse viewers in countries the content is not licensed for.
# input.client.country comes from [geoip] database (ISO 3166-1 alpha-2); without a
# database, or for an address the database does not know, it is undefined, and this
# policy lets the request through (change `allow` to require a known country if your
# licence says "only in ...").
package streamgate

blocked := {"KP", "IR", "SY", "CU"}

default allow := false

allow if not blocked[input.client.country]

reason := sprintf("this content is not available in your country (%s)", [input.client.country]) if {
	blocked[input.client.country]
}
