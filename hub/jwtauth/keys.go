package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"

	"github.com/MicahParks/jwkset"
)

// MinSecretLen is the shortest HMAC secret New and Mint accept, in bytes:
// RFC 7518 section 3.2 asks for a key at least as long as the hash, and a
// short secret can be found by trying guesses offline against any token.
const MinSecretLen = 32

// minRSABits is the smallest RSA modulus accepted.
const minRSABits = 2048

var (
	hmacAlgs  = []string{"HS256", "HS384", "HS512"}
	rsaAlgs   = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	ecAlgs    = []string{"ES256", "ES384", "ES512"}
	edAlgs    = []string{"EdDSA"}
	asymAlgs  = slices.Concat(rsaAlgs, ecAlgs, edAlgs)
	allowAlgs = slices.Concat(hmacAlgs, asymAlgs)
)

// A key is one verification key with the algorithms it is pinned to.
type key struct {
	pub  any      // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	algs []string // the algorithms pub verifies
}

// pin returns the algorithms the public key pub may verify, or an error if
// it is not a key tokens can be verified with. An HMAC secret ([]byte) is
// pinned by the caller, never here: a key from a file or a key set is
// never used as an HMAC secret.
func pin(pub any) ([]string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits: at least %d are needed", k.N.BitLen(), minRSABits)
		}
		return rsaAlgs, nil
	case *ecdsa.PublicKey:
		alg, err := ecAlg(k.Curve)
		if err != nil {
			return nil, err
		}
		return []string{alg}, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, errors.New("Ed25519 key of the wrong size")
		}
		return edAlgs, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", pub)
}

// ecAlg returns the one ES algorithm of curve c.
func ecAlg(c elliptic.Curve) (string, error) {
	switch c {
	case elliptic.P256():
		return "ES256", nil
	case elliptic.P384():
		return "ES384", nil
	case elliptic.P521():
		return "ES512", nil
	}
	return "", fmt.Errorf("unsupported ECDSA curve %s", c.Params().Name)
}

// parsePublicKeysPEM returns the keys of every PEM block in data: each a
// "PUBLIC KEY" (PKIX) or "RSA PUBLIC KEY" (PKCS #1) block.
func parsePublicKeysPEM(data []byte) ([]key, error) {
	var keys []key
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var pub any
		var err error
		switch b.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("found a private key (%s): give its public key (openssl pkey -in key.pem -pubout); the hub needs no private key", b.Type)
		default:
			return nil, fmt.Errorf("found %s, not PUBLIC KEY", b.Type)
		}
		if err != nil {
			return nil, err
		}
		algs, err := pin(pub)
		if err != nil {
			return nil, err
		}
		keys = append(keys, key{pub: pub, algs: algs})
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return keys, nil
}

// jwkKey returns the public key of j if it may verify a token signed with
// alg, or the reason it may not. A symmetric (oct) key from a key set is
// never used: the set is fetched from a URL, and a secret published there
// is no secret.
func jwkKey(j jwkset.JWK, alg string) (any, error) {
	m := j.Marshal()
	if m.USE != "" && m.USE != jwkset.UseSig {
		return nil, refusef("key %q is not for signatures", m.KID)
	}
	if len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify) {
		return nil, refusef("key %q is not for verification", m.KID)
	}
	pub := j.Key()
	if p, ok := pub.(interface{ Public() crypto.PublicKey }); ok {
		pub = p.Public()
	}
	algs, err := pin(pub)
	if err != nil || !slices.Contains(algs, alg) || m.ALG != "" && m.ALG.String() != alg {
		return nil, refusef("algorithm %s not allowed for key %q", alg, m.KID)
	}
	return pub, nil
}
