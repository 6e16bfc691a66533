package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// tlsFlags are the TLS flags of the client commands (publish, listen and
// bench): which certificates they trust when the hub's URL is https.
type tlsFlags struct {
	cacert   string
	insecure bool
}

// register adds --cacert and --insecure to fs.
func (f *tlsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cacert, "cacert", "", "for https, trust the CA certificates in this PEM `file` instead of the system's (a hub with a self-signed certificate: that certificate)")
	fs.BoolVar(&f.insecure, "insecure", false, "INSECURE: for https, do not check the hub's certificate at all, so that anyone on the path can read and change the traffic, tokens included (--cacert is the safe way)")
}

// config returns the TLS configuration the flags describe, or nil, the
// system's roots, when neither is given. With --insecure it warns on
// stderr, prefixed with the command's name, on every use.
func (f *tlsFlags) config(cmd string, stderr io.Writer) (*tls.Config, error) {
	switch {
	case f.cacert != "" && f.insecure:
		return nil, errors.New("give --cacert or --insecure, not both")
	case f.insecure:
		fmt.Fprintf(stderr, "ssehub %s: WARNING: --insecure: the hub's certificate is not checked; anyone on the path can read and change this traffic\n", cmd)
		return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, nil
	}
	return caConfig("cacert", f.cacert)
}

// caConfig returns a TLS configuration that trusts the CA certificates in
// the PEM file path, which the flag named flag gave, or nil (the system's
// roots) when path is empty. Its errors name the flag.
func caConfig(flag, path string) (*tls.Config, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--%s %s: no PEM certificate in it", flag, path)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// tlsHint returns err with advice added when it is the failure to verify
// the hub's certificate; otherwise err as it is.
func tlsHint(err error) error {
	if err == nil || !isCertError(err) {
		return err
	}
	var hostname x509.HostnameError
	if errors.As(err, &hostname) {
		return fmt.Errorf("%w (the URL must name the host the certificate is for)", err)
	}
	return fmt.Errorf("%w (the hub's certificate is not trusted: give its CA with --cacert FILE)", err)
}

// isCertError reports whether err is a failure to verify a certificate:
// one that no retry can mend.
func isCertError(err error) bool {
	var (
		unknown   x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
		verifyErr *tls.CertificateVerificationError
	)
	return errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &hostname) || errors.As(err, &verifyErr)
}
