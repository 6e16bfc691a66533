// Package jwtauth verifies the JSON Web Tokens that grant publishers and
// subscribers of a hub their topics: it implements hub.TokenVerifier.
//
//	v, err := jwtauth.New(ctx, jwtauth.Config{JWKSURL: "https://idp.example.com/.well-known/jwks.json"})
//	// ctx owns the JWKS refresh: cancel it when the hub is done.
//	h := hub.New(log, &hub.Options{Tokens: v})
//
// A token grants topics in its "ssehub" claim, with the selector syntax of
// subscriptions (see hub.Selector):
//
//	{"sub": "user-42", "exp": 1767225600,
//	 "ssehub": {"publish": ["chat/**"], "subscribe": ["user/42/*"]}}
//
// Keys come from an HMAC secret, PEM public keys (RSA, ECDSA, Ed25519) and
// a JWKS URL, in any combination. Each key verifies only the algorithms of
// its type: an HMAC secret HS256, HS384 and HS512; an RSA key RS256–RS512
// and PS256–PS512; an ECDSA key the one ES algorithm of its curve; an
// Ed25519 key EdDSA. So "alg": "none" is never accepted, and a token cannot
// make the verifier use a public key as an HMAC secret.
//
// A Verifier of Config.Claim ClaimMercure reads Mercure's claim instead,
// for the Mercure endpoint, with Mercure's selectors (see
// hub.ParseMercureSelector) and a payload kept verbatim:
//
//	{"exp": 1767225600,
//	 "mercure": {"publish": ["https://example.com/books/{id}"],
//	             "subscribe": ["*"], "payload": {"user": "42"}}}
//
// WithClaim derives from a Verifier one that reads the other claim with
// the same keys, so that both endpoints share one key set.
//
// Verify requires exp (unless Config.AllowNoExp), and checks exp, nbf and
// iat (not in the future) with a leeway, and aud and iss when configured.
// Mint signs development tokens, as "ssehub token" does.
package jwtauth
