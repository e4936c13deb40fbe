"""Payment providers: WeChat Pay API v3 and Alipay (open platform, RSA2)."""
