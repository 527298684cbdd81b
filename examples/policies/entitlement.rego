# Entitlements: a verified JWT claim lists the path prefixes a viewer may watch, e.g.
#   {"sub": "viewer-42", "entitlements": ["/vod/sports/", "/vod/news/"]}
# input.claims holds the claims verified by the route's [auth.*] block ({} without one,
# so this policy then denies everything under the route). Free content under
# /vod/free/ needs no entitlement.
package streamgate

default allow := false

allow if startswith(input.path, "/vod/free/")

allow if {
	some prefix in input.claims.entitlements
	is_string(prefix)
	startswith(input.path, prefix)
}

reason := sprintf("%s is not part of your subscription", [input.path]) if not allow
