package jwtauth_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ssehub/ssehub/hub/jwtauth"
)

// Mint a token with an HMAC secret, and verify it: the grant holds the
// selectors of its ssehub claim.
func Example() {
	secret := []byte("a development secret, 32 bytes+!")
	v, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: secret})
	if err != nil {
		fmt.Println(err)
		return
	}
	token, err := jwtauth.Mint(secret, jwtauth.Claims{
		Subject:   "user-42",
		Expires:   time.Now().Add(time.Hour),
		Publish:   []string{"chat/**"},
		Subscribe: []string{"user/42/*"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	g, err := v.Verify(context.Background(), token)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(g.Subject, g.Publish, g.Subscribe)
	fmt.Println(g.Publish[0].Match("chat/general"), g.Subscribe[0].Match("user/7/inbox"))
	// Output:
	// user-42 [chat/**] [user/42/*]
	// true false
}

// A refused token says why, in words that can be shown to its bearer.
func ExampleVerifier_Verify_expired() {
	secret := []byte("a development secret, 32 bytes+!")
	v, _ := jwtauth.New(context.Background(), jwtauth.Config{Secret: secret})
	token, _ := jwtauth.Mint(secret, jwtauth.Claims{Expires: time.Now().Add(-time.Hour)})
	_, err := v.Verify(context.Background(), token)
	fmt.Println(err)
	// Output:
	// hub: invalid token: expired
}

// One set of keys, two claims: the native endpoint reads the ssehub claim,
// the Mercure endpoint the mercure claim, whose payload is kept as it is.
func ExampleVerifier_WithClaim() {
	secret := []byte("a development secret, 32 bytes+!")
	native, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: secret})
	if err != nil {
		fmt.Println(err)
		return
	}
	mercure := native.WithClaim(jwtauth.ClaimMercure, true) // tokens without exp too
	token, _ := jwtauth.Mint(secret, jwtauth.Claims{
		Claim:     jwtauth.ClaimMercure,
		NoExp:     true,
		Subscribe: []string{"https://example.com/books/{id}"},
		Payload:   []byte(`{"user":"42"}`),
	})
	g, err := mercure.Verify(context.Background(), token)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(g.Subscribe, string(g.Payload), g.Expires.IsZero())
	fmt.Println(g.Subscribe[0].Match("https://example.com/books/1"))
	_, err = native.Verify(context.Background(), token)
	fmt.Println(err)
	// Output:
	// [https://example.com/books/{id}] {"user":"42"} true
	// true
	// hub: invalid token: no exp claim
}
