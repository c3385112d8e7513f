// Command filegate-go-client runs the interop scenario of tests/clients/README.md
// against a filegate gateway with grpc-go and a client generated from proto/.
// It prints one PASS or FAIL line per check and exits 1 unless all passed.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	filegatev1 "filegate/gen/filegatev1"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	mib         = 1 << 20
	callTimeout = 60 * time.Second
)

// config is what the runner passes in the environment.
type config struct {
	addr, token, owner, otherToken, otherOwner string
	gzip, channelChecks                        bool
}

func configFromEnv() (config, error) {
	cfg := config{
		addr:          os.Getenv("FILEGATE_ADDR"),
		token:         os.Getenv("FILEGATE_TOKEN"),
		owner:         os.Getenv("FILEGATE_OWNER"),
		otherToken:    os.Getenv("FILEGATE_OTHER_TOKEN"),
		otherOwner:    os.Getenv("FILEGATE_OTHER_OWNER"),
		channelChecks: os.Getenv("FILEGATE_CHANNEL_CHECKS") == "1",
	}
	switch compression := os.Getenv("FILEGATE_COMPRESSION"); compression {
	case "identity":
	case "gzip":
		cfg.gzip = true
	default:
		return cfg, fmt.Errorf("FILEGATE_COMPRESSION is %q, not identity or gzip", compression)
	}
	for name, value := range map[string]string{
		"FILEGATE_ADDR": cfg.addr, "FILEGATE_TOKEN": cfg.token, "FILEGATE_OWNER": cfg.owner,
		"FILEGATE_OTHER_TOKEN": cfg.otherToken, "FILEGATE_OTHER_OWNER": cfg.otherOwner,
	} {
		if value == "" {
			return cfg, fmt.Errorf("%s is not set", name)
		}
	}
	return cfg, nil
}

// dial opens a plaintext channel; in gzip mode every request is compressed.
func dial(cfg config, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	options := append([]grpc.DialOption{grpc.WithInsecure()}, extra...)
	if cfg.gzip {
		options = append(options, grpc.WithDefaultCallOptions(grpc.UseCompressor(gzip.Name)))
	}
	return grpc.Dial(cfg.addr, options...)
}

// caller calls the gateway as the owner of one token.
type caller struct {
	stub  filegatev1.FileGatewayServiceClient
	token string
}

func newCaller(conn *grpc.ClientConn, token string) caller {
	return caller{stub: filegatev1.NewFileGatewayServiceClient(conn), token: token}
}

// ctx carries the bearer token, any extra metadata pairs, and a deadline.
func (c caller) ctx(timeout time.Duration, pairs ...string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	pairs = append([]string{"authorization", "Bearer " + c.token}, pairs...)
	return metadata.AppendToOutgoingContext(ctx, pairs...), cancel
}

// uploadWith sends `first`, then data[from:] in 1 MiB messages that carry
// their offset; a stream that the server ended early reports its status.
func (c caller) uploadWith(ctx context.Context, first *filegatev1.UploadRequest, data []byte, from int) (*filegatev1.UploadResponse, error) {
	stream, err := c.stub.Upload(ctx)
	if err != nil {
		return nil, err
	}
	messages := []*filegatev1.UploadRequest{first}
	for at := from; at < len(data); at += mib {
		end := min(at+mib, len(data))
		messages = append(messages, &filegatev1.UploadRequest{WriteOffset: int64(at), Data: data[at:end]})
	}
	for _, message := range messages {
		if err := stream.Send(message); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
	}
	return stream.CloseAndRecv()
}

// upload stores data under a spec (filename, size, SHA-256, requestID) sent alone first.
func (c caller) upload(filename string, data []byte, requestID string) (*filegatev1.Document, error) {
	ctx, cancel := c.ctx(callTimeout)
	defer cancel()
	spec := &filegatev1.UploadSpec{
		Filename: filename, SizeBytes: int64Ptr(len(data)), Sha256: sha256Hex(data), RequestId: requestID,
	}
	first := &filegatev1.UploadRequest{FirstMessage: &filegatev1.UploadRequest_Spec{Spec: spec}}
	response, err := c.uploadWith(ctx, first, data, 0)
	if err != nil {
		return nil, err
	}
	return response.Document, nil
}

func (c caller) get(documentID string) (*filegatev1.Document, error) {
	ctx, cancel := c.ctx(callTimeout)
	defer cancel()
	response, err := c.stub.GetDocument(ctx, &filegatev1.GetDocumentRequest{DocumentId: documentID})
	if err != nil {
		return nil, err
	}
	return response.Document, nil
}

func (c caller) signedURL(documentID string) (*filegatev1.SignedUrlResponse, error) {
	ctx, cancel := c.ctx(callTimeout)
	defer cancel()
	return c.stub.SignedUrl(ctx, &filegatev1.SignedUrlRequest{DocumentId: documentID})
}

func (c caller) delete(documentID string) error {
	ctx, cancel := c.ctx(callTimeout)
	defer cancel()
	_, err := c.stub.Delete(ctx, &filegatev1.DeleteRequest{DocumentId: documentID})
	return err
}

func (c caller) queryUpload(uploadID string) (*filegatev1.QueryUploadResponse, error) {
	ctx, cancel := c.ctx(callTimeout)
	defer cancel()
	return c.stub.QueryUpload(ctx, &filegatev1.QueryUploadRequest{UploadId: uploadID})
}

// list gives every document, following next_page_token (at most 100 pages).
func (c caller) list(pageSize int32) ([]*filegatev1.Document, error) {
	var documents []*filegatev1.Document
	token := ""
	for page := 0; page < 100; page++ {
		ctx, cancel := c.ctx(callTimeout)
		response, err := c.stub.ListDocuments(ctx, &filegatev1.ListDocumentsRequest{PageSize: pageSize, PageToken: token})
		cancel()
		if err != nil {
			return nil, err
		}
		if len(response.Documents) > int(pageSize) {
			return nil, fmt.Errorf("a page of %d documents, asked for %d", len(response.Documents), pageSize)
		}
		documents = append(documents, response.Documents...)
		if token = response.NextPageToken; token == "" {
			return documents, nil
		}
	}
	return nil, fmt.Errorf("ListDocuments still had pages after 100")
}

// readResult is what a Read stream delivered.
type readResult struct {
	first    *filegatev1.ReadResponse
	data     []byte
	messages int
}

func (c caller) read(documentID string, offset, limit int64) (readResult, error) {
	var result readResult
	ctx, cancel := c.ctx(callTimeout)
	defer cancel()
	stream, err := c.stub.Read(ctx, &filegatev1.ReadRequest{DocumentId: documentID, ReadOffset: offset, ReadLimit: limit})
	if err != nil {
		return result, err
	}
	for {
		message, err := stream.Recv()
		if err == io.EOF {
			break
		} else if err != nil {
			return result, err
		}
		if len(message.Data) > 2*mib {
			return result, fmt.Errorf("a message of %d bytes", len(message.Data))
		}
		if result.first == nil {
			result.first = message
		}
		result.data = append(result.data, message.Data...)
		result.messages++
	}
	if result.first == nil {
		return result, fmt.Errorf("Read sent no message")
	}
	return result, nil
}

// nextUploadEvents reads the stream until an fp.upload event came for every
// handle; returns those events in the order they came.
func nextUploadEvents(stream filegatev1.FileGatewayService_WatchEventsClient, handles ...string) ([]*filegatev1.Event, error) {
	wanted := map[string]bool{}
	for _, handle := range handles {
		wanted[handle] = true
	}
	var events []*filegatev1.Event
	for len(wanted) > 0 {
		event, err := stream.Recv()
		if err != nil {
			return events, fmt.Errorf("the stream ended before fp.upload of %v: %v", keys(wanted), describe(err))
		}
		if event.Action == "fp.upload" && wanted[event.Handle] {
			delete(wanted, event.Handle)
			events = append(events, event)
		}
	}
	return events, nil
}

// download GETs url with net/http: (status, body).
func download(url string) (int, []byte, error) {
	client := http.Client{Timeout: callTimeout}
	response, err := client.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer response.Body.Close()
	body, err := io.ReadAll(response.Body)
	return response.StatusCode, body, err
}

// downloadOK GETs url and refuses any answer but 200.
func downloadOK(url string) ([]byte, error) {
	code, body, err := download(url)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET %s answered %d", url, code)
	}
	return body, err
}

// errorDetails decodes the google.rpc.Status details of a gRPC error.
func errorDetails(err error) (*errdetails.ErrorInfo, *errdetails.BadRequest) {
	var info *errdetails.ErrorInfo
	var badRequest *errdetails.BadRequest
	st, _ := status.FromError(err)
	for _, detail := range st.Details() {
		switch detail := detail.(type) {
		case *errdetails.ErrorInfo:
			info = detail
		case *errdetails.BadRequest:
			badRequest = detail
		}
	}
	return info, badRequest
}

// expectCode fails unless err has the gRPC status code want.
func expectCode(err error, want codes.Code, what string) error {
	if got := status.Code(err); got != want {
		return fmt.Errorf("%s: %s, expected %v", what, describe(err), want)
	}
	return nil
}

// describe names an error's status code and message.
func describe(err error) string {
	if err == nil {
		return "OK"
	}
	if st, ok := status.FromError(err); ok {
		return fmt.Sprintf("%v: %s", st.Code(), st.Message())
	}
	return err.Error()
}

// expectDocument fails unless the document holds exactly data, named filename, of owner.
func expectDocument(document *filegatev1.Document, filename string, data []byte, owner string) error {
	switch {
	case document == nil:
		return fmt.Errorf("no document")
	case document.Id == "":
		return fmt.Errorf("the document has no id")
	case document.Filename != filename:
		return fmt.Errorf("filename %q, sent %q", document.Filename, filename)
	case document.SizeBytes != int64(len(data)):
		return fmt.Errorf("size %d, sent %d", document.SizeBytes, len(data))
	case document.Sha256 != sha256Hex(data):
		return fmt.Errorf("sha256 %s, expected %s", document.Sha256, sha256Hex(data))
	case document.Owner != owner:
		return fmt.Errorf("owner %q, expected %q", document.Owner, owner)
	}
	return nil
}

func randomBytes(n int) []byte {
	data := make([]byte, n)
	if _, err := rand.Read(data); err != nil {
		panic(err)
	}
	return data
}

func randomID() string {
	return hex.EncodeToString(randomBytes(16))
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func int64Ptr(n int) *int64 {
	value := int64(n)
	return &value
}

func keys(set map[string]bool) []string {
	var names []string
	for name := range set {
		names = append(names, name)
	}
	return names
}

// check is one named step of the scenario.
type check struct {
	name string
	run  func() error
}

// runChecks prints one PASS or FAIL line for each check; returns whether all passed.
func runChecks(checks []check) bool {
	passed := true
	for _, c := range checks {
		if err := c.run(); err != nil {
			fmt.Printf("FAIL %s: %s\n", c.name, strings.ReplaceAll(err.Error(), "\n", "; "))
			passed = false
		} else {
			fmt.Printf("PASS %s\n", c.name)
		}
	}
	return passed
}

func main() {
	cfg, err := configFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	conn, err := dial(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(2)
	}
	defer conn.Close()
	s := &scenario{cfg: cfg, owner: newCaller(conn, cfg.token), other: newCaller(conn, cfg.otherToken)}
	checks := s.checks()
	if cfg.channelChecks {
		checks = append(checks, s.channelChecks()...)
	}
	if !runChecks(checks) {
		os.Exit(1)
	}
}
