package memstore_test

import (
	"testing"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/logtest"
	"github.com/ssehub/ssehub/store/memstore"
)

func TestLog(t *testing.T) { logtest.Run(t, func(*testing.T) hub.Log { return memstore.New() }) }
