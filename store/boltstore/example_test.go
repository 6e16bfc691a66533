package boltstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/store/boltstore"
)

func Example() {
	dir, err := os.MkdirTemp("", "ssehub")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := boltstore.Open(filepath.Join(dir, "ssehub.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	recs := []hub.Record{
		{Topics: []string{"chat/lobby"}, Data: "hello"},
		{Topics: []string{"news"}, Data: "extra", ID: "news-1"},
		{Topics: []string{"chat/games"}, Type: "move", Data: "e4"},
	}
	if err := s.Append(ctx, recs); err != nil {
		log.Fatal(err)
	}
	fmt.Println("IDs:", recs[0].ID, recs[1].ID, recs[2].ID)

	sel, _ := hub.ParseSelector("chat/*")
	err = s.Read(ctx, 0, []hub.Selector{sel}, func(r *hub.Record) bool {
		fmt.Println(r.Pos, r.Topics, r.Type, r.Data)
		return true
	})
	if err != nil {
		log.Fatal(err)
	}
	pos, _ := s.Lookup(ctx, "news-1")
	fmt.Println("news-1 is at", pos)
	// Output:
	// IDs: 1 news-1 3
	// 1 [chat/lobby]  hello
	// 3 [chat/games] move e4
	// news-1 is at 2
}
