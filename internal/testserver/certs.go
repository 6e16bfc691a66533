package testserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CertFiles are the PEM files of a test CA and of a server certificate
// it signed, for 127.0.0.1 and localhost, valid for an hour either side
// of their making.
type CertFiles struct {
	CA, Cert, Key string         // the paths of the CA's certificate, the server's and its key
	Pool          *x509.CertPool // holds the CA
}

// Certs makes a CA and a server certificate in a t.TempDir() of its own.
func Certs(tb testing.TB) CertFiles {
	tb.Helper()
	now := time.Now()
	caKey := newKey(tb)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ssehub test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	check(tb, err)
	ca, err := x509.ParseCertificate(caDER)
	check(tb, err)
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	check(tb, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	check(tb, err)
	dir := tb.TempDir()
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		check(tb, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600))
		return p
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return CertFiles{
		CA:   write("ca.pem", "CERTIFICATE", caDER),
		Cert: write("cert.pem", "CERTIFICATE", der),
		Key:  write("key.pem", "PRIVATE KEY", keyDER),
		Pool: pool,
	}
}

// ClientConfig returns a TLS configuration that trusts the CA and
// nothing else.
func (c CertFiles) ClientConfig() *tls.Config { return &tls.Config{RootCAs: c.Pool} }

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(tb, err)
	return k
}

// check fails the test with err, if not nil.
func check(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
