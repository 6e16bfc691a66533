package jwtauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssehub/ssehub/hub"
)

// Claims are what Mint puts in a token. The zero value is not mintable:
// Expires is required.
type Claims struct {
	Subject  string // sub, omitted if empty
	Audience string // aud, omitted if empty
	Issuer   string // iss, omitted if empty
	ID       string // jti, omitted if empty

	IssuedAt  time.Time // iat; if zero, the current time
	NotBefore time.Time // nbf, omitted if zero
	Expires   time.Time // exp, required: Verify refuses a token without it

	// Publish and Subscribe are the selectors of the ssehub claim. Each
	// must parse with hub.ParseSelector.
	Publish   []string
	Subscribe []string

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
	if c.Expires.IsZero() {
		return "", errors.New("jwtauth: no expiry: a token without exp is refused")
	}
	for _, s := range append(c.Publish[:len(c.Publish):len(c.Publish)], c.Subscribe...) {
		if _, err := hub.ParseSelector(s); err != nil {
			return "", fmt.Errorf("jwtauth: %w", err)
		}
	}
	iat := c.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	tc := claims{RegisteredClaims: jwt.RegisteredClaims{
		Subject:   c.Subject,
		Issuer:    c.Issuer,
		ID:        c.ID,
		IssuedAt:  jwt.NewNumericDate(iat),
		ExpiresAt: jwt.NewNumericDate(c.Expires),
	}}
	if c.Audience != "" {
		tc.Audience = jwt.ClaimStrings{c.Audience}
	}
	if !c.NotBefore.IsZero() {
		tc.NotBefore = jwt.NewNumericDate(c.NotBefore)
	}
	if len(c.Publish) > 0 || len(c.Subscribe) > 0 {
		tc.SSEHub = &grantClaim{Publish: c.Publish, Subscribe: c.Subscribe}
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
