#ifndef CODEBOOK_IMAGE_CODECS_H
#define CODEBOOK_IMAGE_CODECS_H

#include <stddef.h>

/// The outcome of a decode or encode.
typedef enum {
    CB_IMAGE_OK = 0,
    /// Neither a JPEG nor a PNG signature.
    CB_IMAGE_UNKNOWN_FORMAT = 1,
    /// The library refused the data (truncated, corrupt, unsupported); see `message`.
    CB_IMAGE_CORRUPT = 2,
    /// The header claims more pixels (or a longer side) than the caller allows.
    CB_IMAGE_TOO_LARGE = 3,
    CB_IMAGE_OUT_OF_MEMORY = 4,
} cb_image_status;

/// Decoded 8-bit pixels, row-major, `channels` (1: grey, 3: RGB) interleaved values per pixel.
typedef struct {
    int width;
    int height;
    int channels;
    /// malloc'ed; release with `cb_image_free`.
    unsigned char *pixels;
    /// The library's words for a failure, NUL-terminated.
    char message[200];
} cb_image;

/// The most scans a progressive JPEG may have. Each scan is a pass over every block of the
/// image, even a scan of a few bytes, so a small file of many scans would take minutes to
/// decode; encoders write about ten. (libjpeg-turbo suggests a limit of this size for
/// untrusted files.)
#define CB_IMAGE_MAXIMUM_SCANS 500

/// Decodes a JPEG or PNG held in memory. Every library error, and libjpeg's "premature end
/// of file" warning, returns an error status instead of ending the process or filling the
/// rest with grey. The header's dimensions are checked against `max_side` and `max_pixels`
/// before any pixel memory is allocated. PNG: palette and grey below 8 bits are expanded,
/// 16-bit samples scaled to 8, alpha dropped. JPEG: grey stays grey, any other colour space
/// is converted to RGB by libjpeg (CMYK is refused); a JPEG of more than
/// `CB_IMAGE_MAXIMUM_SCANS` scans is refused as corrupt.
cb_image_status cb_image_decode(const unsigned char *data, size_t size, size_t max_side, size_t max_pixels,
                                cb_image *image);

/// Releases `image->pixels` (safe on an image whose decode failed).
void cb_image_free(cb_image *image);

/// Encodes 8-bit pixels (1 or 3 channels) as a PNG (`quality` < 0) or a baseline JPEG of
/// `quality` 1–100 into a malloc'ed buffer (`*out`, `*out_size`; release with `free`).
cb_image_status cb_image_encode(const unsigned char *pixels, int width, int height, int channels, int quality,
                                unsigned char **out, size_t *out_size, char message[200]);

/// Releases a buffer returned by `cb_image_encode`.
void cb_image_free_buffer(unsigned char *buffer);

#endif
