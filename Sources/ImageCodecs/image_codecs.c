// JPEG and PNG through libjpeg-turbo and libpng, with error handlers that return instead
// of printing and calling exit() (libjpeg's default) or aborting: each library error
// longjmps back to the function that started the work, which releases what it allocated.
#include "image_codecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

static void set_message(char *message, const char *text) {
    snprintf(message, 200, "%s", text);
}

/// Checks a header's claim before anything of its size is allocated.
static int dimensions_allowed(size_t width, size_t height, size_t max_side, size_t max_pixels, char *message) {
    if (width == 0 || height == 0) {
        snprintf(message, 200, "the header gives an empty image (%zu×%zu)", width, height);
        return 0;
    }
    if (width > max_side || height > max_side || width * height > max_pixels) {
        snprintf(message, 200, "the header claims %zu×%zu pixels; the limit is %zu pixels and %zu on a side",
                 width, height, max_pixels, max_side);
        return 0;
    }
    return 1;
}

// ---------------------------------------------------------------- JPEG

struct jpeg_failure {
    struct jpeg_error_mgr manager; // first: libjpeg sees only this part
    jmp_buf jump;
    char *message;
};

static void jpeg_fail(j_common_ptr info) {
    struct jpeg_failure *failure = (struct jpeg_failure *)info->err;
    char text[JMSG_LENGTH_MAX];
    (*info->err->format_message)(info, text);
    set_message(failure->message, text);
    longjmp(failure->jump, 1);
}

/// Silences libjpeg's warnings, except a premature end of data: libjpeg would fill the
/// missing rows with grey, and a truncated file is a bad image, not a grey one.
static void jpeg_notice(j_common_ptr info, int level) {
    if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) jpeg_fail(info);
}

/// Ends the decoding of a JPEG with more than `CB_IMAGE_MAXIMUM_SCANS` scans (libjpeg calls
/// it as it reads each part of a scan).
static void jpeg_scan_limit(j_common_ptr info) {
    if (((j_decompress_ptr)info)->input_scan_number <= CB_IMAGE_MAXIMUM_SCANS) return;
    struct jpeg_failure *failure = (struct jpeg_failure *)info->err;
    snprintf(failure->message, 200, "more than %d scans (each scan is a pass over the whole image)", CB_IMAGE_MAXIMUM_SCANS);
    longjmp(failure->jump, 1);
}

static void jpeg_errors(struct jpeg_failure *failure, char *message) {
    jpeg_std_error(&failure->manager);
    failure->manager.error_exit = jpeg_fail;
    failure->manager.emit_message = jpeg_notice;
    failure->message = message;
}

static cb_image_status decode_jpeg(const unsigned char *data, size_t size, size_t max_side, size_t max_pixels,
                                   cb_image *image) {
    struct jpeg_decompress_struct info;
    struct jpeg_failure failure;
    struct jpeg_progress_mgr progress = {.progress_monitor = jpeg_scan_limit};
    unsigned char *volatile pixels = NULL;
    memset(&info, 0, sizeof info);
    jpeg_errors(&failure, image->message);
    info.err = &failure.manager;
    if (setjmp(failure.jump)) {
        jpeg_destroy_decompress(&info);
        free(pixels);
        return CB_IMAGE_CORRUPT;
    }
    jpeg_create_decompress(&info);
    info.progress = &progress;
    jpeg_mem_src(&info, data, (unsigned long)size);
    jpeg_read_header(&info, TRUE);
    if (!dimensions_allowed(info.image_width, info.image_height, max_side, max_pixels, image->message)) {
        jpeg_destroy_decompress(&info);
        return CB_IMAGE_TOO_LARGE;
    }
    info.out_color_space = info.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&info);
    size_t row_bytes = (size_t)info.output_width * (size_t)info.output_components;
    pixels = malloc(row_bytes * info.output_height);
    if (pixels == NULL) {
        jpeg_destroy_decompress(&info);
        set_message(image->message, "out of memory for the pixels");
        return CB_IMAGE_OUT_OF_MEMORY;
    }
    while (info.output_scanline < info.output_height) {
        JSAMPROW row = pixels + (size_t)info.output_scanline * row_bytes;
        jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
    image->width = (int)info.output_width;
    image->height = (int)info.output_height;
    image->channels = info.output_components;
    image->pixels = pixels;
    jpeg_destroy_decompress(&info);
    return CB_IMAGE_OK;
}

// ---------------------------------------------------------------- PNG

struct png_memory {
    unsigned char *data;
    size_t size;
    size_t offset;   // reading: bytes consumed
    size_t capacity; // writing: bytes allocated
};

static void png_fail(png_structp png, png_const_charp text) {
    set_message((char *)png_get_error_ptr(png), text);
    png_longjmp(png, 1);
}

static void png_notice(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

static void png_read_memory(png_structp png, png_bytep out, size_t count) {
    struct png_memory *source = png_get_io_ptr(png);
    if (count > source->size - source->offset) png_error(png, "the file ends early (truncated)");
    memcpy(out, source->data + source->offset, count);
    source->offset += count;
}

static cb_image_status decode_png(const unsigned char *data, size_t size, size_t max_side, size_t max_pixels,
                                  cb_image *image) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, image->message, png_fail, png_notice);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        set_message(image->message, "out of memory for the decoder");
        return CB_IMAGE_OUT_OF_MEMORY;
    }
    unsigned char *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    volatile cb_image_status status = CB_IMAGE_CORRUPT;
    struct png_memory source = {(unsigned char *)data, size, 0, 0};
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(pixels);
        free(rows);
        return status;
    }
    png_set_read_fn(png, &source, png_read_memory);
    // Our own limits decide (below); libpng's default would refuse sides over 10^6 as corrupt.
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_set_chunk_malloc_max(png, 64u << 20);
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    if (!dimensions_allowed(width, height, max_side, max_pixels, image->message)) {
        status = CB_IMAGE_TOO_LARGE;
        png_longjmp(png, 1);
    }
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_scale_16(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    size_t row_bytes = png_get_rowbytes(png, info);
    if ((channels != 1 && channels != 3) || row_bytes != (size_t)width * (size_t)channels) {
        png_error(png, "unexpected pixel layout after conversion to 8-bit grey or RGB");
    }
    pixels = malloc(row_bytes * height);
    rows = malloc(sizeof(png_bytep) * height);
    if (pixels == NULL || rows == NULL) {
        status = CB_IMAGE_OUT_OF_MEMORY;
        png_error(png, "out of memory for the pixels");
    }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + (size_t)y * row_bytes;
    png_read_image(png, (png_bytepp)rows);
    png_read_end(png, NULL);
    image->width = (int)width;
    image->height = (int)height;
    image->channels = channels;
    image->pixels = pixels;
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return CB_IMAGE_OK;
}

// ---------------------------------------------------------------- decoding

cb_image_status cb_image_decode(const unsigned char *data, size_t size, size_t max_side, size_t max_pixels,
                                cb_image *image) {
    memset(image, 0, sizeof *image);
    static const unsigned char png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) {
        return decode_jpeg(data, size, max_side, max_pixels, image);
    }
    if (size >= 8 && memcmp(data, png_signature, 8) == 0) {
        return decode_png(data, size, max_side, max_pixels, image);
    }
    set_message(image->message, "neither a JPEG nor a PNG file (unknown signature)");
    return CB_IMAGE_UNKNOWN_FORMAT;
}

void cb_image_free(cb_image *image) {
    free(image->pixels);
    image->pixels = NULL;
}

// ---------------------------------------------------------------- encoding

static void png_write_memory(png_structp png, png_bytep bytes, size_t count) {
    struct png_memory *sink = png_get_io_ptr(png);
    if (count > sink->capacity - sink->size) {
        size_t capacity = sink->capacity * 2 > sink->size + count ? sink->capacity * 2 : sink->size + count + 4096;
        unsigned char *grown = realloc(sink->data, capacity);
        if (grown == NULL) png_error(png, "out of memory for the encoded file");
        sink->data = grown;
        sink->capacity = capacity;
    }
    memcpy(sink->data + sink->size, bytes, count);
    sink->size += count;
}

static void png_flush_memory(png_structp png) {
    (void)png;
}

static cb_image_status encode_png(const unsigned char *pixels, int width, int height, int channels,
                                  unsigned char **out, size_t *out_size, char *message) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, message, png_fail, png_notice);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (info == NULL) {
        png_destroy_write_struct(&png, NULL);
        set_message(message, "out of memory for the encoder");
        return CB_IMAGE_OUT_OF_MEMORY;
    }
    struct png_memory sink = {NULL, 0, 0, 0};
    struct png_memory *volatile result = &sink;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(result->data);
        return CB_IMAGE_CORRUPT;
    }
    png_set_write_fn(png, &sink, png_write_memory, png_flush_memory);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++) png_write_row(png, pixels + (size_t)y * (size_t)width * (size_t)channels);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *out = sink.data;
    *out_size = sink.size;
    return CB_IMAGE_OK;
}

static cb_image_status encode_jpeg(const unsigned char *pixels, int width, int height, int channels, int quality,
                                   unsigned char **out, size_t *out_size, char *message) {
    struct jpeg_compress_struct info;
    struct jpeg_failure failure;
    unsigned char *buffer = NULL;
    unsigned long size = 0;
    unsigned char *volatile *volatile result = &buffer;
    memset(&info, 0, sizeof info);
    jpeg_errors(&failure, message);
    info.err = &failure.manager;
    if (setjmp(failure.jump)) {
        jpeg_destroy_compress(&info);
        free(*result);
        return CB_IMAGE_CORRUPT;
    }
    jpeg_create_compress(&info);
    jpeg_mem_dest(&info, &buffer, &size);
    info.image_width = (JDIMENSION)width;
    info.image_height = (JDIMENSION)height;
    info.input_components = channels;
    info.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&info);
    jpeg_set_quality(&info, quality, TRUE);
    jpeg_start_compress(&info, TRUE);
    while (info.next_scanline < info.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)info.next_scanline * (size_t)width * (size_t)channels);
        jpeg_write_scanlines(&info, &row, 1);
    }
    jpeg_finish_compress(&info);
    jpeg_destroy_compress(&info);
    *out = buffer;
    *out_size = size;
    return CB_IMAGE_OK;
}

cb_image_status cb_image_encode(const unsigned char *pixels, int width, int height, int channels, int quality,
                                unsigned char **out, size_t *out_size, char message[200]) {
    *out = NULL;
    *out_size = 0;
    message[0] = 0;
    if (width < 1 || height < 1 || (channels != 1 && channels != 3) || quality > 100) {
        set_message(message, "cannot encode: needs width, height ≥ 1, 1 or 3 channels, quality ≤ 100");
        return CB_IMAGE_CORRUPT;
    }
    return quality < 0 ? encode_png(pixels, width, height, channels, out, out_size, message)
                       : encode_jpeg(pixels, width, height, channels, quality < 1 ? 1 : quality, out, out_size, message);
}

void cb_image_free_buffer(unsigned char *buffer) {
    free(buffer);
}
