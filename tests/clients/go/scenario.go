// The checks of the scenario and the channel checks, in the order of
// tests/clients/README.md; later checks use the documents earlier ones stored.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strconv"
	"strings"
	"time"

	filegatev1 "filegate/gen/filegatev1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
)

const (
	partSize      = 8 * mib
	watchTimeout  = 30 * time.Second
	keepaliveIdle = 25 * time.Second
)

// scenario holds the callers and what earlier checks stored.
type scenario struct {
	cfg          config
	owner, other caller

	matrix                           []byte
	matrixDoc, pngDoc, resumedDoc    *filegatev1.Document
	matrixRequestID, matrixSignedURL string
	lastEventID                      int64
}

func (s *scenario) checks() []check {
	return []check{
		{"who_am_i", s.whoAmI},
		{"upload", s.upload},
		{"idempotent_retry", s.idempotentRetry},
		{"signed_url", s.signedURL},
		{"thumbnail", s.thumbnail},
		{"metadata", s.metadata},
		{"paging", s.paging},
		{"other_owner", s.otherOwner},
		{"rich_error", s.richError},
		{"watch_events", s.watchEvents},
		{"resumed_upload", s.resumedUpload},
		{"ranged_read", s.rangedRead},
		{"delete", s.delete},
	}
}

func (s *scenario) channelChecks() []check {
	return []check{
		{"keepalive", s.keepalive},
		{"deadline", s.deadline},
		{"large_metadata", s.largeMetadata},
	}
}

func (s *scenario) whoAmI() error {
	for _, who := range []struct {
		caller caller
		owner  string
	}{{s.owner, s.cfg.owner}, {s.other, s.cfg.otherOwner}} {
		ctx, cancel := who.caller.ctx(callTimeout)
		response, err := who.caller.stub.WhoAmI(ctx, &filegatev1.WhoAmIRequest{})
		cancel()
		if err != nil {
			return fmt.Errorf("WhoAmI: %s", describe(err))
		}
		if response.Owner != who.owner {
			return fmt.Errorf("WhoAmI names %q, expected %q", response.Owner, who.owner)
		}
	}
	return nil
}

func (s *scenario) upload() error {
	data := randomBytes(5*mib + 12345)
	requestID := randomID()
	document, err := s.owner.upload("matrix.bin", data, requestID)
	if err != nil {
		return fmt.Errorf("Upload: %s", describe(err))
	}
	if err := expectDocument(document, "matrix.bin", data, s.cfg.owner); err != nil {
		return err
	}
	if len(document.Handle) != 20 {
		return fmt.Errorf("handle %q is not 20 characters", document.Handle)
	}
	s.matrix, s.matrixDoc, s.matrixRequestID = data, document, requestID
	return nil
}

func (s *scenario) needMatrix() error {
	if s.matrixDoc == nil {
		return fmt.Errorf("no matrix.bin document: the upload check failed")
	}
	return nil
}

func (s *scenario) needPNG() error {
	if s.pngDoc == nil {
		return fmt.Errorf("no image.png document: the thumbnail check failed")
	}
	return nil
}

func (s *scenario) idempotentRetry() error {
	if err := s.needMatrix(); err != nil {
		return err
	}
	document, err := s.owner.upload("matrix.bin", s.matrix, s.matrixRequestID)
	if err != nil {
		return fmt.Errorf("retried Upload: %s", describe(err))
	}
	if document.GetId() != s.matrixDoc.Id {
		return fmt.Errorf("the retry returned document %q, the first upload %q", document.GetId(), s.matrixDoc.Id)
	}
	documents, err := s.owner.list(100)
	if err != nil {
		return fmt.Errorf("ListDocuments: %s", describe(err))
	}
	if len(documents) != 1 {
		return fmt.Errorf("ListDocuments holds %d documents, expected 1", len(documents))
	}
	return nil
}

func (s *scenario) signedURL() error {
	if err := s.needMatrix(); err != nil {
		return err
	}
	response, err := s.owner.signedURL(s.matrixDoc.Id)
	if err != nil {
		return fmt.Errorf("SignedUrl: %s", describe(err))
	}
	if expires := response.ExpireTime.AsTime(); !expires.After(time.Now()) {
		return fmt.Errorf("expire_time %v is not in the future", expires)
	}
	body, err := downloadOK(response.Url)
	if err != nil {
		return err
	}
	if !bytes.Equal(body, s.matrix) {
		return fmt.Errorf("downloaded %d bytes that differ from the upload", len(body))
	}
	s.matrixSignedURL = response.Url
	return nil
}

// gradientPNG encodes an opaque width x height image, which image/png writes as RGB.
func gradientPNG(width, height int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	for y := 0; y < height; y++ {
		for x := 0; x < width; x++ {
			img.Set(x, y, color.RGBA{R: uint8(x * 4), G: uint8(y * 5), B: 128, A: 255})
		}
	}
	var out bytes.Buffer
	if err := png.Encode(&out, img); err != nil {
		panic(err)
	}
	return out.Bytes()
}

func (s *scenario) thumbnail() error {
	data := gradientPNG(64, 48)
	document, err := s.owner.upload("image.png", data, "")
	if err != nil {
		return fmt.Errorf("Upload of image.png: %s", describe(err))
	}
	if err := expectDocument(document, "image.png", data, s.cfg.owner); err != nil {
		return err
	}
	s.pngDoc = document
	ctx, cancel := s.owner.ctx(callTimeout)
	defer cancel()
	request := &filegatev1.ThumbnailRequest{DocumentId: document.Id, Width: 32, Height: 24, Fit: filegatev1.Fit_FIT_CROP}
	response, err := s.owner.stub.Thumbnail(ctx, request)
	if err != nil {
		return fmt.Errorf("Thumbnail: %s", describe(err))
	}
	body, err := downloadOK(response.Url)
	if err != nil {
		return err
	}
	img, err := png.Decode(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("the thumbnail is not a PNG: %v", err)
	}
	if size := img.Bounds().Size(); size != image.Pt(32, 24) {
		return fmt.Errorf("the thumbnail is %dx%d, asked 32x24", size.X, size.Y)
	}
	return nil
}

func (s *scenario) metadataOf(documentID string, fields ...filegatev1.MetadataField) (*filegatev1.MetadataResponse, error) {
	ctx, cancel := s.owner.ctx(callTimeout)
	defer cancel()
	return s.owner.stub.Metadata(ctx, &filegatev1.MetadataRequest{DocumentId: documentID, Fields: fields})
}

func (s *scenario) metadata() error {
	if err := s.needMatrix(); err != nil {
		return err
	}
	if err := s.needPNG(); err != nil {
		return err
	}
	matrix, err := s.metadataOf(s.matrixDoc.Id, filegatev1.MetadataField_METADATA_FIELD_SIZE,
		filegatev1.MetadataField_METADATA_FIELD_MIMETYPE, filegatev1.MetadataField_METADATA_FIELD_FILENAME,
		filegatev1.MetadataField_METADATA_FIELD_SHA256)
	if err != nil {
		return fmt.Errorf("Metadata of matrix.bin: %s", describe(err))
	}
	if matrix.SizeBytes == nil || *matrix.SizeBytes != int64(len(s.matrix)) ||
		matrix.GetMimetype() != "application/octet-stream" || matrix.GetFilename() != "matrix.bin" ||
		matrix.GetSha256() != sha256Hex(s.matrix) {
		return fmt.Errorf("Metadata of matrix.bin: %v", matrix)
	}
	picture, err := s.metadataOf(s.pngDoc.Id, filegatev1.MetadataField_METADATA_FIELD_WIDTH,
		filegatev1.MetadataField_METADATA_FIELD_HEIGHT)
	if err != nil {
		return fmt.Errorf("Metadata of image.png: %s", describe(err))
	}
	if picture.Width == nil || picture.Height == nil || *picture.Width != 64 || *picture.Height != 48 {
		return fmt.Errorf("Metadata of image.png: %v, expected width 64 and height 48", picture)
	}
	return nil
}

func documentIDs(documents []*filegatev1.Document) []string {
	ids := make([]string, len(documents))
	for i, document := range documents {
		ids[i] = document.Id
	}
	return ids
}

func (s *scenario) paging() error {
	if err := s.needMatrix(); err != nil {
		return err
	}
	if err := s.needPNG(); err != nil {
		return err
	}
	paged, err := s.owner.list(1)
	if err != nil {
		return fmt.Errorf("ListDocuments by 1: %s", describe(err))
	}
	whole, err := s.owner.list(100)
	if err != nil {
		return fmt.Errorf("ListDocuments by 100: %s", describe(err))
	}
	expected := []string{s.pngDoc.Id, s.matrixDoc.Id}
	if got := documentIDs(whole); strings.Join(got, ",") != strings.Join(expected, ",") {
		return fmt.Errorf("one page lists %v, expected %v (image.png, matrix.bin)", got, expected)
	}
	if got := documentIDs(paged); strings.Join(got, ",") != strings.Join(expected, ",") {
		return fmt.Errorf("pages of 1 list %v, one page %v", got, expected)
	}
	return nil
}

func (s *scenario) otherOwner() error {
	if err := s.needMatrix(); err != nil {
		return err
	}
	id := s.matrixDoc.Id
	_, getErr := s.other.get(id)
	_, signErr := s.other.signedURL(id)
	if err := errors.Join(
		expectNotOwner(getErr, "GetDocument as the other owner"),
		expectNotOwner(signErr, "SignedUrl as the other owner"),
		expectNotOwner(s.other.delete(id), "Delete as the other owner"),
	); err != nil {
		return err
	}
	if _, err := s.owner.get(id); err != nil {
		return fmt.Errorf("GetDocument as the owner after the other's Delete: %s", describe(err))
	}
	return nil
}

// expectNotOwner fails unless err is PERMISSION_DENIED with reason NOT_DOCUMENT_OWNER.
func expectNotOwner(err error, what string) error {
	if err := expectCode(err, codes.PermissionDenied, what); err != nil {
		return err
	}
	if info, _ := errorDetails(err); info == nil || info.Reason != "NOT_DOCUMENT_OWNER" {
		return fmt.Errorf("%s: ErrorInfo %v, expected reason NOT_DOCUMENT_OWNER", what, info)
	}
	return nil
}

func (s *scenario) richError() error {
	if err := s.needPNG(); err != nil {
		return err
	}
	ctx, cancel := s.owner.ctx(callTimeout)
	defer cancel()
	_, err := s.owner.stub.Thumbnail(ctx, &filegatev1.ThumbnailRequest{DocumentId: s.pngDoc.Id, Width: 0, Height: 24})
	if err := expectCode(err, codes.InvalidArgument, "Thumbnail of width 0"); err != nil {
		return err
	}
	info, badRequest := errorDetails(err)
	if info == nil || info.Domain != "filegate" || info.Reason != "INVALID_ARGUMENT" {
		return fmt.Errorf("ErrorInfo %v, expected domain filegate, reason INVALID_ARGUMENT", info)
	}
	if badRequest == nil {
		return fmt.Errorf("no BadRequest in the details")
	}
	for _, violation := range badRequest.FieldViolations {
		if violation.Field == "width" {
			return nil
		}
	}
	return fmt.Errorf("BadRequest %v names no field width", badRequest)
}

func (s *scenario) watchEvents() error {
	if err := s.needMatrix(); err != nil {
		return err
	}
	if err := s.needPNG(); err != nil {
		return err
	}
	ctx, cancel := s.owner.ctx(watchTimeout)
	defer cancel()
	stream, err := s.owner.stub.WatchEvents(ctx, &filegatev1.WatchEventsRequest{AfterEventId: 0})
	if err != nil {
		return fmt.Errorf("WatchEvents: %s", describe(err))
	}
	events, err := nextUploadEvents(stream, s.matrixDoc.Handle, s.pngDoc.Handle)
	if err != nil {
		return err
	}
	first, second := events[0], events[1]
	s.lastEventID = second.Id
	resumedCtx, cancelResumed := s.owner.ctx(watchTimeout)
	defer cancelResumed()
	resumed, err := s.owner.stub.WatchEvents(resumedCtx, &filegatev1.WatchEventsRequest{AfterEventId: first.Id})
	if err != nil {
		return fmt.Errorf("WatchEvents after %d: %s", first.Id, describe(err))
	}
	next, err := resumed.Recv()
	if err != nil {
		return fmt.Errorf("WatchEvents after %d: %s", first.Id, describe(err))
	}
	if next.Id != second.Id || next.Action != "fp.upload" || next.Handle != second.Handle {
		return fmt.Errorf("WatchEvents after %d began with event %d %s %s, expected %d", first.Id, next.Id, next.Action, next.Handle, second.Id)
	}
	return nil
}

func (s *scenario) startUpload(data []byte) (*filegatev1.StartUploadResponse, error) {
	ctx, cancel := s.owner.ctx(callTimeout)
	defer cancel()
	spec := &filegatev1.UploadSpec{Filename: "resumed.bin", SizeBytes: int64Ptr(len(data)), Sha256: sha256Hex(data)}
	return s.owner.stub.StartUpload(ctx, &filegatev1.StartUploadRequest{Spec: spec})
}

// resumeUpload sends data[from:to] on a stream continuing uploadID at offset from.
func (s *scenario) resumeUpload(uploadID string, data []byte, from, to int) (*filegatev1.UploadResponse, error) {
	ctx, cancel := s.owner.ctx(callTimeout)
	defer cancel()
	first := &filegatev1.UploadRequest{
		FirstMessage: &filegatev1.UploadRequest_UploadId{UploadId: uploadID}, WriteOffset: int64(from),
	}
	return s.owner.uploadWith(ctx, first, data[:to], from)
}

func (s *scenario) resumedUpload() error {
	data := randomBytes(8*mib + 1000)
	started, err := s.startUpload(data)
	if err != nil {
		return fmt.Errorf("StartUpload: %s", describe(err))
	}
	if started.UploadId == "" || started.PartSizeBytes != partSize {
		return fmt.Errorf("StartUpload answered %v, expected an upload_id and part_size_bytes %d", started, partSize)
	}
	id := started.UploadId
	if err := s.sendFirstPart(id, data); err != nil {
		return err
	}
	if err := s.resumeAtZero(id, data); err != nil {
		return err
	}
	response, err := s.resumeUpload(id, data, partSize, len(data))
	if err != nil {
		return fmt.Errorf("the resumed stream: %s", describe(err))
	}
	if err := expectDocument(response.Document, "resumed.bin", data, s.cfg.owner); err != nil {
		return fmt.Errorf("the resumed stream: %v", err)
	}
	s.resumedDoc = response.Document
	query, err := s.owner.queryUpload(id)
	if err != nil {
		return fmt.Errorf("QueryUpload when finished: %s", describe(err))
	}
	if query.Document.GetId() != response.Document.Id {
		return fmt.Errorf("QueryUpload names document %q, expected %q", query.Document.GetId(), response.Document.Id)
	}
	_, err = s.other.queryUpload(id)
	return expectCode(err, codes.NotFound, "QueryUpload as the other owner")
}

// sendFirstPart sends the first part and 500 more bytes: one part is persisted.
func (s *scenario) sendFirstPart(uploadID string, data []byte) error {
	response, err := s.resumeUpload(uploadID, data, 0, partSize+500)
	if err != nil {
		return fmt.Errorf("the first stream: %s", describe(err))
	}
	if response.Document != nil || response.PersistedBytes != partSize {
		return fmt.Errorf("the first stream answered %v, expected no document and persisted_bytes %d", response, partSize)
	}
	query, err := s.owner.queryUpload(uploadID)
	if err != nil {
		return fmt.Errorf("QueryUpload: %s", describe(err))
	}
	if query.PersistedBytes != partSize || query.Document != nil {
		return fmt.Errorf("QueryUpload answered %v, expected persisted_bytes %d", query, partSize)
	}
	return nil
}

// resumeAtZero expects OUT_OF_RANGE OFFSET_NOT_PERSISTED naming the persisted bytes.
func (s *scenario) resumeAtZero(uploadID string, data []byte) error {
	_, err := s.resumeUpload(uploadID, data, 0, len(data))
	if err := expectCode(err, codes.OutOfRange, "a stream resuming at offset 0"); err != nil {
		return err
	}
	info, _ := errorDetails(err)
	if info == nil || info.Reason != "OFFSET_NOT_PERSISTED" || info.Metadata["persisted_bytes"] != strconv.Itoa(partSize) {
		return fmt.Errorf("a stream resuming at offset 0: ErrorInfo %v, expected OFFSET_NOT_PERSISTED with persisted_bytes %d", info, partSize)
	}
	return nil
}

func (s *scenario) rangedRead() error {
	if err := s.needMatrix(); err != nil {
		return err
	}
	id, size := s.matrixDoc.Id, int64(len(s.matrix))
	whole, err := s.owner.read(id, 0, 0)
	if err != nil {
		return fmt.Errorf("Read whole: %s", describe(err))
	}
	if !bytes.Equal(whole.data, s.matrix) || whole.messages < 2 {
		return fmt.Errorf("Read whole: %d bytes in %d messages, expected the %d uploaded bytes in more than one", len(whole.data), whole.messages, size)
	}
	start := int64(mib + 3)
	ranged, err := s.owner.read(id, start, 1000)
	if err != nil {
		return fmt.Errorf("Read at %d: %s", start, describe(err))
	}
	span := ranged.first.ContentRange
	if span.GetStart() != start || span.GetEnd() != start+1000 || span.GetCompleteLength() != size {
		return fmt.Errorf("Read at %d: content_range %v, expected %d-%d of %d", start, span, start, start+1000, size)
	}
	if !bytes.Equal(ranged.data, s.matrix[start:start+1000]) {
		return fmt.Errorf("Read at %d: %d bytes that differ from the upload", start, len(ranged.data))
	}
	tail, err := s.owner.read(id, -4321, 0)
	if err != nil {
		return fmt.Errorf("Read at -4321: %s", describe(err))
	}
	if !bytes.Equal(tail.data, s.matrix[size-4321:]) {
		return fmt.Errorf("Read at -4321: %d bytes that are not the last 4321", len(tail.data))
	}
	return nil
}

func (s *scenario) delete() error {
	if err := s.needMatrix(); err != nil {
		return err
	}
	for _, document := range []*filegatev1.Document{s.matrixDoc, s.pngDoc, s.resumedDoc} {
		if document == nil {
			continue
		}
		if err := s.owner.delete(document.Id); err != nil {
			return fmt.Errorf("Delete of %s: %s", document.Filename, describe(err))
		}
	}
	left, err := s.owner.list(100)
	if err != nil {
		return fmt.Errorf("ListDocuments: %s", describe(err))
	}
	if len(left) != 0 {
		return fmt.Errorf("ListDocuments still holds %v", documentIDs(left))
	}
	_, err = s.owner.get(s.matrixDoc.Id)
	if err := expectCode(err, codes.NotFound, "GetDocument of the deleted matrix.bin"); err != nil {
		return err
	}
	if s.matrixSignedURL == "" {
		return fmt.Errorf("no signed URL: the signed_url check failed")
	}
	code, _, err := download(s.matrixSignedURL)
	if err != nil {
		return err
	}
	if code != 404 {
		return fmt.Errorf("the signed URL of the deleted file answered %d, expected 404", code)
	}
	return nil
}

// keepalive idles a WatchEvents stream on a channel that pings every 10 s, then
// uploads on that channel and expects the stream to deliver the upload's event.
func (s *scenario) keepalive() error {
	conn, err := dial(s.cfg, grpc.WithKeepaliveParams(keepalive.ClientParameters{
		Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true,
	}))
	if err != nil {
		return fmt.Errorf("dial: %v", err)
	}
	defer conn.Close()
	pinged := newCaller(conn, s.cfg.token)
	ctx, cancel := pinged.ctx(keepaliveIdle + callTimeout + watchTimeout)
	defer cancel()
	stream, err := pinged.stub.WatchEvents(ctx, &filegatev1.WatchEventsRequest{AfterEventId: s.lastEventID})
	if err != nil {
		return fmt.Errorf("WatchEvents: %s", describe(err))
	}
	time.Sleep(keepaliveIdle)
	data := []byte("kept alive\n")
	document, err := pinged.upload("keepalive.txt", data, "")
	if err != nil {
		return fmt.Errorf("Upload after %v idle: %s", keepaliveIdle, describe(err))
	}
	if err := expectDocument(document, "keepalive.txt", data, s.cfg.owner); err != nil {
		return err
	}
	_, eventErr := nextUploadEvents(stream, document.Handle)
	if err := pinged.delete(document.Id); err != nil {
		return fmt.Errorf("Delete of keepalive.txt: %s", describe(err))
	}
	return eventErr
}

// deadline abandons an upload mid-file, then uploads it whole with the same request_id.
func (s *scenario) deadline() error {
	data := randomBytes(4 * mib)
	requestID := randomID()
	ctx, cancel := s.owner.ctx(2 * time.Second)
	defer cancel()
	stream, err := s.owner.stub.Upload(ctx)
	if err != nil {
		return fmt.Errorf("Upload: %s", describe(err))
	}
	spec := &filegatev1.UploadSpec{Filename: "deadline.bin", SizeBytes: int64Ptr(len(data)), RequestId: requestID}
	for _, message := range []*filegatev1.UploadRequest{
		{FirstMessage: &filegatev1.UploadRequest_Spec{Spec: spec}},
		{WriteOffset: 0, Data: data[:mib]},
	} {
		if err := stream.Send(message); err != nil {
			break
		}
	}
	err = stream.RecvMsg(&filegatev1.UploadResponse{})
	if err := expectCode(err, codes.DeadlineExceeded, "the stalled upload"); err != nil {
		return err
	}
	left, err := s.owner.list(100)
	if err != nil {
		return fmt.Errorf("ListDocuments: %s", describe(err))
	}
	if len(left) != 0 {
		return fmt.Errorf("ListDocuments holds %v after the stalled upload", documentIDs(left))
	}
	document, err := s.owner.upload("deadline.bin", data, requestID)
	if err != nil {
		return fmt.Errorf("the whole upload with the same request_id: %s", describe(err))
	}
	if err := expectDocument(document, "deadline.bin", data, s.cfg.owner); err != nil {
		return err
	}
	if err := s.owner.delete(document.Id); err != nil {
		return fmt.Errorf("Delete of deadline.bin: %s", describe(err))
	}
	return nil
}

func (s *scenario) largeMetadata() error {
	padding := make([]byte, 8192)
	for i := range padding {
		padding[i] = byte('a' + i%26)
	}
	ctx, cancel := s.owner.ctx(callTimeout, "x-filegate-padding", string(padding))
	defer cancel()
	response, err := s.owner.stub.WhoAmI(ctx, &filegatev1.WhoAmIRequest{})
	if err != nil {
		return fmt.Errorf("WhoAmI with 8 KiB of metadata: %s", describe(err))
	}
	if response.Owner != s.cfg.owner {
		return fmt.Errorf("WhoAmI names %q, expected %q", response.Owner, s.cfg.owner)
	}
	return nil
}
