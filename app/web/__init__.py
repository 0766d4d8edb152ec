"""The built-in web page: plain HTML, CSS and JS files served by the API itself."""
