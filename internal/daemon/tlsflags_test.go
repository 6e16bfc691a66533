package daemon

import (
	"encoding/pem"
	"os"
	"testing"
)

// writePEMCert writes the DER certificate der to name as PEM.
func writePEMCert(t *testing.T, name string, der []byte) {
	t.Helper()
	if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
