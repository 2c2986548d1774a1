public enum ClientLibPlaceholder {}
