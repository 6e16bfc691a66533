package jwtauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssehub/ssehub/hub"
)

// Claims are what Mint puts in a token. The zero value is not mintable:
// Expires is required, unless NoExp.
type Claims struct {
	Subject  string // sub, omitted if empty
	Audience string // aud, omitted if empty
	Issuer   string // iss, omitted if empty
	ID       string // jti, omitted if empty

	IssuedAt  time.Time // iat; if zero, the current time
	NotBefore time.Time // nbf, omitted if zero
	Expires   time.Time // exp, required unless NoExp

	// NoExp mints a token without exp, which only a Verifier with
	// Config.AllowNoExp accepts, and which never expires: for Mercure
	// clients that need one. Expires must then be zero.
	NoExp bool

	// Claim is the claim Publish, Subscribe and Payload go in. The zero
	// value is ClaimSSEHub.
	Claim Claim

	// Publish and Subscribe are the selectors of the claim. Each must
	// parse with hub.ParseSelector, or hub.ParseMercureSelector for
	// ClaimMercure.
	Publish   []string
	Subscribe []string

	// Payload is the payload of the mercure claim, a JSON value; omitted
	// if nil. Only ClaimMercure has one.
	Payload json.RawMessage

	// KeyID is the kid header, which selects a key of a verifier's key
	// set; omitted if empty.
	KeyID string
}

// Mint signs a token carrying c with key, for development and tests:
// production tokens come from an identity provider. The algorithm follows
// from the key: a []byte secret (at least MinSecretLen bytes) signs HS256,
// an *rsa.PrivateKey RS256, an *ecdsa.PrivateKey ES256, ES384 or ES512 by
// its curve, and an ed25519.PrivateKey EdDSA.
func Mint(key any, c Claims) (string, error) {
	var method jwt.SigningMethod
	switch k := key.(type) {
	case []byte:
		if len(k) < MinSecretLen {
			return "", fmt.Errorf("jwtauth: HMAC secret of %d bytes: at least %d are needed", len(k), MinSecretLen)
		}
		method = jwt.SigningMethodHS256
	case *rsa.PrivateKey:
		if k.N.BitLen() < minRSABits {
			return "", fmt.Errorf("jwtauth: RSA key of %d bits: at least %d are needed", k.N.BitLen(), minRSABits)
		}
		method = jwt.SigningMethodRS256
	case *ecdsa.PrivateKey:
		alg, err := ecAlg(k.Curve)
		if err != nil {
			return "", fmt.Errorf("jwtauth: %w", err)
		}
		method = jwt.GetSigningMethod(alg)
	case ed25519.PrivateKey:
		method = jwt.SigningMethodEdDSA
	default:
		return "", fmt.Errorf("jwtauth: cannot sign with a %T", key)
	}
	switch {
	case c.NoExp && !c.Expires.IsZero():
		return "", errors.New("jwtauth: NoExp with an expiry: give one or the other")
	case !c.NoExp && c.Expires.IsZero():
		return "", errors.New("jwtauth: no expiry: a token without exp is refused unless the verifier allows it (NoExp)")
	case c.Claim != ClaimSSEHub && c.Claim != ClaimMercure:
		return "", fmt.Errorf("jwtauth: unknown %v", c.Claim)
	case c.Payload != nil && c.Claim != ClaimMercure:
		return "", errors.New("jwtauth: a payload goes in the mercure claim only")
	case c.Payload != nil && !json.Valid(c.Payload):
		return "", errors.New("jwtauth: the payload is not JSON")
	}
	parse := hub.ParseSelector
	if c.Claim == ClaimMercure {
		parse = hub.ParseMercureSelector
	}
	for _, s := range append(c.Publish[:len(c.Publish):len(c.Publish)], c.Subscribe...) {
		if _, err := parse(s); err != nil {
			return "", fmt.Errorf("jwtauth: %w", err)
		}
	}
	iat := c.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	rc := jwt.RegisteredClaims{
		Subject:  c.Subject,
		Issuer:   c.Issuer,
		ID:       c.ID,
		IssuedAt: jwt.NewNumericDate(iat),
	}
	if !c.NoExp {
		rc.ExpiresAt = jwt.NewNumericDate(c.Expires)
	}
	if c.Audience != "" {
		rc.Audience = jwt.ClaimStrings{c.Audience}
	}
	if !c.NotBefore.IsZero() {
		rc.NotBefore = jwt.NewNumericDate(c.NotBefore)
	}
	granted := len(c.Publish) > 0 || len(c.Subscribe) > 0
	var tc jwt.Claims
	switch {
	case c.Claim == ClaimMercure && (granted || c.Payload != nil):
		tc = mercureClaims{RegisteredClaims: rc, Mercure: &mercureClaim{Publish: c.Publish, Subscribe: c.Subscribe, Payload: c.Payload}}
	case c.Claim == ClaimSSEHub && granted:
		tc = claims{RegisteredClaims: rc, SSEHub: &grantClaim{Publish: c.Publish, Subscribe: c.Subscribe}}
	default:
		tc = rc
	}
	t := jwt.NewWithClaims(method, tc)
	if c.KeyID != "" {
		t.Header["kid"] = c.KeyID
	}
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("jwtauth: sign: %w", err)
	}
	return s, nil
}

// ParsePrivateKeyPEM returns the private key in the first key block of
// data, as Mint takes it: PKCS #8 ("PRIVATE KEY", holding RSA, ECDSA or
// Ed25519), PKCS #1 ("RSA PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY"). An
// "EC PARAMETERS" block before it is skipped; encrypted keys are refused.
func ParsePrivateKeyPEM(data []byte) (any, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("jwtauth: no PEM private key found")
		}
		var key any
		var err error
		switch {
		case b.Type == "EC PARAMETERS":
			continue
		case b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != "":
			return nil, errors.New("jwtauth: the private key is encrypted; decrypt it first (openssl pkey -in key.pem -out plain.pem)")
		}
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			return nil, fmt.Errorf("jwtauth: found %s, not a private key", b.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("jwtauth: %s: %w", b.Type, err)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("jwtauth: unsupported private key type %T", key)
	}
}
