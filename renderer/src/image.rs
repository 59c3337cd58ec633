//! Image assets (PNG, JPEG): decoded once per template, embedded once per PDF file.

/// Index of an image in an [`ImageStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId(pub u32);

/// An image that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImageError(pub String);

/// A decoded image ready to embed.
pub struct ImageAsset {
    pub name: String,
    pub width_px: u32,
    pub height_px: u32,
    /// Resolution used for natural size (from the file, default 300 dpi).
    pub dpi: f32,
    pub hash: [u8; 32],
}

impl ImageAsset {
    /// Decodes PNG or JPEG bytes.
    pub fn load(name: &str, bytes: &[u8]) -> Result<Self, ImageError> {
        let _ = (name, bytes);
        todo!("pdf stage")
    }
}

/// The images of a template.
#[derive(Default)]
pub struct ImageStore {
    pub images: Vec<ImageAsset>,
}

impl ImageStore {
    /// Adds an image and returns its id.
    pub fn add(&mut self, asset: ImageAsset) -> ImageId {
        self.images.push(asset);
        ImageId(self.images.len() as u32 - 1)
    }
    /// Returns an image.
    pub fn get(&self, id: ImageId) -> &ImageAsset {
        &self.images[id.0 as usize]
    }
}
